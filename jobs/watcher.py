"""The watcher: a thread of the serve job, on the serve node, beside the server.

It resolves the endpoint, waits through model load and warmup (polling /health every
health.poll_interval_s, so readiness is seen within that interval), climbs the ladder
(/health -> /v1/models -> a checked completion), then probes liveness every
health.liveness_interval_s. Every phase and verdict goes to the run's health file, which
`glm5_hpc status` and `submit --wait` read. The deadline counts from the job's start, never
from queueing. The watcher judges; the supervisor in jobs/stage.py decides what to do.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from glm5_hpc.adapters.endpoint import node_name, resolve
from glm5_hpc.adapters.files import read_json, write_json_atomic
from glm5_hpc.adapters.policies import poll_until
from glm5_hpc.adapters.probe import probe_health, run_ladder
from glm5_hpc.domain.health import Verdict
from glm5_hpc.domain.names import CLUSTER, NODE_ONLY
from glm5_hpc.domain.profile import LOOPBACK
from glm5_hpc.domain.route import Route, may_claim, parse_route, superseded
from glm5_hpc.domain.watch import Progress, WatchSpec

KEEP_VERDICTS = 50
HealthDoc = dict[str, Any]


def log_size() -> int:
    """How much the serve job has logged (its stdout is the job's log file): growth is progress."""
    try:
        return os.fstat(sys.stdout.fileno()).st_size
    except (OSError, ValueError):
        return 0


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class HealthFile:
    """The run's health.json: one document, rewritten atomically on every change, shared by the
    supervisor and the watcher threads of successive attempts. With `metrics_dir` the same facts
    go to a Prometheus textfile there (watcher-<job>.prom), which the router serves merged with its own."""

    def __init__(self, path: str, job_id: str, replica: int = 0, metrics_dir: str = "") -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self.doc: HealthDoc = {"phase": "starting", "job_id": job_id, "started_at": time.time(), "restarts": 0, "verdicts": []}
        self.metrics = WatcherMetrics(Path(metrics_dir) / f"watcher-{job_id}.prom", job_id, replica) if metrics_dir else None
        if self.metrics is not None:  # the job's end takes its metrics out of the router's scrape
            atexit.register(self.metrics.path.unlink, missing_ok=True)

    def record(self, verdicts: Sequence[Verdict] = (), **fields: Any) -> None:
        with self.lock:
            if verdicts:
                self.doc["verdicts"] = (self.doc["verdicts"] + [v.to_json() for v in verdicts])[-KEEP_VERDICTS:]
            self.doc.update(fields, updated_at=time.time())
            write_json_atomic(self.path, self.doc)
            if self.metrics is not None:
                self.metrics.write(self.doc, verdicts)


class WatcherMetrics:
    """glm5_watcher_phase{phase}, _ready, _restarts, _requeues, _route_holder, _seconds_to_ready and
    _probes_total{rung,result}, each labelled with the serve job and its replica."""

    def __init__(self, path: Path, job_id: str, replica: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.path = path
        self.labels = {"job_id": job_id, "replica": str(replica)}
        self.registry = CollectorRegistry()
        names = ["job_id", "replica"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"glm5_watcher_{name}", doc, [*names, *extra], registry=self.registry)

        self.phase = gauge("phase", "1 for the serve job's current health phase", ("phase",))
        self.ready = gauge("ready", "1 while the server is ready (the full ladder passed, liveness holds)")
        self.restarts = gauge("restarts", "Server restarts inside the serve job (health.restart)")
        self.requeues = gauge("requeues", "Times Slurm started the serve job again")
        self.holder = gauge("route_holder", "1 while this serve job holds its replica's route (gets the router's traffic)")
        self.to_ready = gauge("seconds_to_ready", "From the serve job's start to ready")
        self.probes = Counter("glm5_watcher_probes", "Probes by rung and result", [*names, "rung", "result"],
                              registry=self.registry)  # fmt: skip

    def write(self, doc: HealthDoc, verdicts: Sequence[Verdict]) -> None:
        from prometheus_client import write_to_textfile

        self.phase.clear()
        self.phase.labels(**self.labels, phase=str(doc.get("phase"))).set(1)
        self.ready.labels(**self.labels).set(1 if doc.get("phase") == "ready" else 0)
        self.restarts.labels(**self.labels).set(int(doc.get("restarts") or 0))
        self.requeues.labels(**self.labels).set(int(doc.get("requeues") or 0))
        self.holder.labels(**self.labels).set(1 if doc.get("route") == "holder" else 0)
        if doc.get("ready_at"):
            self.to_ready.labels(**self.labels).set(float(doc["ready_at"]) - float(doc["started_at"]))
        for v in verdicts:
            self.probes.labels(**self.labels, rung=v.rung, result="ok" if v.ok else "failed").inc()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(self.path), self.registry)
        except OSError as exc:  # metrics are an extra: the health file stays the record
            print(f"glm5_hpc: watcher: could not write {self.path}: {exc}", file=sys.stderr, flush=True)


class Watcher(threading.Thread):
    def __init__(self, spec: WatchSpec, health: HealthFile, deadline: float, end_server: Callable[[str], None]) -> None:
        super().__init__(name="glm5-watcher", daemon=True)
        self.spec = spec
        self.health = health
        self.deadline = deadline  # time.monotonic() value: readiness must come before it
        self.end_server = end_server  # stops this attempt's server (the supervisor decides what follows)
        self.stop = threading.Event()
        self.outcome = ""  # "", ready, gibberish, deadline, unhealthy, retired
        self.url = ""  # what clients reach (the gateway's address when there is one)

    def run(self) -> None:
        h = self.spec.health
        job_id = self.health.doc["job_id"]
        found = poll_until(lambda: resolve(self.spec, job_id), self.deadline - time.monotonic(), h.poll_interval_s, self.stop)
        if found is None:
            if not self.stop.is_set():
                self.give_up("the server never got an address")
            return
        url, kind, scope = found
        self.url = self.spec.public_url or url  # what clients (and the router) reach
        if self.spec.public_url:  # probes go to the server itself; users go through the gateway
            node_only = urlsplit(self.spec.public_url).hostname in LOOPBACK
            kind = f"API-key gateway on node {node_name()}" + (", reachable on that node only" if node_only else "")
            scope = NODE_ONLY if node_only else CLUSTER
        self.health.record(phase="loading", endpoint=self.url, endpoint_kind=kind, endpoint_scope=scope, node=node_name(),
                           reason="")  # fmt: skip
        try:
            with httpx.Client() as client:
                if self.wait_ready(client, url):
                    self.liveness(client, url)
        finally:
            self.release_route()  # the server is ending or restarting: the router stops sending it requests

    def started_ranks(self) -> list[str]:
        """The nodes of the ranks whose containers started (a server across nodes)."""
        if self.spec.ranks < 2:
            return []
        folder = Path(self.spec.ranks_dir) / str(self.health.doc["job_id"])
        return [read_text(f).strip() or "?" for f in folder.glob("*")] if folder.is_dir() else []

    def note_progress(self, progress: Progress) -> bool:
        """Record waiting for ranks / loading / hung as it changes; True once the server is judged hung."""
        phase, reason = progress.update(self.started_ranks(), log_size(), time.monotonic())
        if (phase, reason) != (self.health.doc.get("phase"), self.health.doc.get("reason")):
            self.health.record(phase=phase, reason=reason)
        return phase == "hung"

    def wait_ready(self, client: httpx.Client, url: str) -> bool:
        h = self.spec.health
        last: list[Verdict] = []
        progress = Progress(self.spec.ranks, h.hang_after_s, time.monotonic())

        def attempt() -> str | None:
            nonlocal last
            health = probe_health(client, url, h.request_timeout_s)
            last = [health]
            if not health.ok:
                return "hung" if self.note_progress(progress) else None
            ladder = run_ladder(client, url, self.spec.model_id, h.prompt, h.expect, h.max_tokens,
                                h.request_timeout_s, h.completion_timeout_s)  # fmt: skip
            last = ladder
            if all(v.ok for v in ladder):
                return "ready"
            # the server answers, and answers wrongly: the recipe's failure mode
            return "gibberish" if ladder[-1].rung == "completion" and ladder[-1].replied else None

        self.outcome = poll_until(attempt, self.deadline - time.monotonic(), h.poll_interval_s, self.stop) or ""
        if self.outcome == "ready":
            self.claim_route()  # before "ready" is visible: whoever sees ready finds the traffic here
            self.health.record(last, phase="ready", ready_at=time.time(), completion=last[-1].detail, reason="")
        elif self.outcome == "gibberish":
            self.health.record(last, phase="unhealthy", reason=last[-1].detail)
        elif self.outcome == "hung":  # handled like an unhealthy server: the restart policy decides
            self.outcome = "unhealthy"
            self.end_server(str(self.health.doc["reason"]))
            return False
        elif not self.stop.is_set():
            detail = last[-1].detail if last else "no probe answered"
            self.give_up(f"not ready within ready_timeout_s={h.ready_timeout_s:g} (last probe: {detail})", last)
            return False
        return not self.stop.is_set()

    def read_route(self) -> Route | None:
        return parse_route(read_json(self.spec.route_file))

    def claim_route(self) -> None:
        """Take this replica's traffic, unless a newer serve job holds it."""
        job_id = self.health.doc["job_id"]
        if self.spec.route_file and may_claim(self.read_route(), job_id):
            write_json_atomic(Path(self.spec.route_file), Route(job_id, self.url, time.time(), self.spec.replica).to_json())
            self.health.record(route="holder")

    def release_route(self) -> None:
        """Give this replica's route up, if this job still holds it."""
        route = self.read_route() if self.spec.route_file else None
        if route is not None and route.job_id == self.health.doc["job_id"]:
            Path(self.spec.route_file).unlink(missing_ok=True)
            self.health.record(route="")

    def retire_if_superseded(self) -> bool:
        """A newer serve job took the traffic: let this server drain, then end it."""
        route = self.read_route() if self.spec.route_file else None
        if not superseded(route, self.health.doc["job_id"]):
            return False
        assert route is not None
        reason = f"traffic moved to job {route.job_id} ({route.url})"
        self.health.record(phase="retiring", route="", reason=f"{reason}; draining for {self.spec.drain_s:g}s")
        if not self.stop.wait(self.spec.drain_s):
            self.outcome = "retired"
            self.health.record(phase="retired", reason=reason)
            self.end_server(reason)
        return True

    def liveness(self, client: httpx.Client, url: str) -> None:
        h = self.spec.health
        failures, down = 0, False
        next_probe = time.monotonic() + h.liveness_interval_s
        while not self.stop.wait(min(1.0, h.liveness_interval_s)):
            if self.retire_if_superseded():
                return
            if time.monotonic() < next_probe:
                continue
            next_probe = time.monotonic() + h.liveness_interval_s
            v = probe_health(client, url, h.request_timeout_s)
            failures = 0 if v.ok else failures + 1
            if failures >= h.liveness_failures and not down:
                down = True
                reason = f"{failures} liveness probes failed: {v.detail}"
                self.release_route()
                self.health.record([v], phase="unhealthy", reason=reason)
                if h.restart == "restart":
                    self.outcome = "unhealthy"
                    self.end_server(reason)
                    return
            elif v.ok and down and self.outcome == "ready":
                down = False
                self.health.record([v], phase="ready", reason="")
                self.claim_route()
            else:
                self.health.record([v])

    def give_up(self, reason: str, verdicts: Sequence[Verdict] = ()) -> None:
        self.outcome = "deadline"
        self.health.record(verdicts, phase="failed", reason=reason)
        self.end_server(reason)
