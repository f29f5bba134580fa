"""The watcher: runs inside the serve job, on the serve node, beside the server.

It resolves the endpoint, waits through model load and warmup (polling /health every
health.poll_interval_s, so readiness is seen within that interval), climbs the ladder
(/health -> /v1/models -> a checked completion), then keeps probing liveness. Every phase and
verdict goes to the run's health file, which `glm5_hpc status` and `submit --wait` read.
The deadline counts from the job's start, never from queueing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from glm5_hpc.adapters.endpoint import resolve
from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.adapters.probe import probe_health, run_ladder
from glm5_hpc.domain.health import Verdict
from glm5_hpc.domain.watch import WatchSpec

KEEP_VERDICTS = 50


class Watcher(threading.Thread):
    def __init__(self, spec: WatchSpec, give_up: Callable[[str], None]) -> None:
        super().__init__(name="glm5-watcher", daemon=True)
        self.spec = spec
        self.give_up = give_up  # called when the server will never be ready: ends the job
        self.stop = threading.Event()
        self.doc: dict[str, Any] = {
            "phase": "starting",
            "job_id": os.environ.get("SLURM_JOB_ID", ""),
            "started_at": time.time(),
            "verdicts": [],
        }

    def record(self, **fields: Any) -> None:
        self.doc.update(fields, updated_at=time.time())
        write_json_atomic(Path(self.spec.health_file), self.doc)

    def add(self, verdicts: list[Verdict]) -> None:
        self.doc["verdicts"] = (self.doc["verdicts"] + [v.to_json() for v in verdicts])[-KEEP_VERDICTS:]

    def run(self) -> None:
        h = self.spec.health
        deadline = time.monotonic() + h.ready_timeout_s
        self.record(phase="starting")
        with httpx.Client() as client:
            url = self.wait_endpoint(deadline)
            if url is None or not self.wait_ready(client, url, deadline):
                return
            self.liveness(client, url)

    def wait_endpoint(self, deadline: float) -> str | None:
        job_id = self.doc["job_id"]
        while not self.stop.is_set():
            found = resolve(self.spec, job_id)
            if found:
                self.record(phase="loading", endpoint=found[0], endpoint_kind=found[1])
                return found[0]
            if time.monotonic() > deadline:
                self.fail("the container never got an address")
                return None
            self.stop.wait(self.spec.health.poll_interval_s)
        return None

    def wait_ready(self, client: httpx.Client, url: str, deadline: float) -> bool:
        h = self.spec.health
        while not self.stop.is_set():
            if time.monotonic() > deadline:
                self.fail(f"not ready within ready_timeout_s={h.ready_timeout_s:g}")
                return False
            health = probe_health(client, url, h.request_timeout_s)
            if health.ok:
                ladder = run_ladder(
                    client, url, self.spec.model_id, h.prompt, h.expect, h.max_tokens, h.request_timeout_s, h.completion_timeout_s
                )
                if all(v.ok for v in ladder):
                    self.add(ladder)
                    self.record(phase="ready", ready_at=time.time(), completion=ladder[-1].detail, reason="")
                    return True
                if ladder[-1].rung == "completion" and ladder[-1].replied:
                    # The server answers, and answers wrongly: the recipe's failure mode.
                    self.add(ladder)
                    self.record(phase="unhealthy", reason=ladder[-1].detail)
                    return True
            self.stop.wait(h.poll_interval_s)
        return False

    def liveness(self, client: httpx.Client, url: str) -> None:
        h = self.spec.health
        failures, down = 0, False
        while not self.stop.wait(h.liveness_interval_s):
            v = probe_health(client, url, h.request_timeout_s)
            self.add([v])
            failures = 0 if v.ok else failures + 1
            if failures >= self.spec.liveness_failures and not down:
                down = True
                self.record(phase="unhealthy", reason=f"{failures} liveness probes failed: {v.detail}")
            elif v.ok and down:
                down = False
                self.record(phase="ready", reason="")
            else:
                self.record()

    def fail(self, reason: str) -> None:
        self.record(phase="failed", reason=reason)
        self.give_up(reason)
