"""A client that keeps a deployment busy: completions sent back to back (one in flight, a short
pause between) through a URL, each outcome recorded. Used by benchmarks/zero_downtime.py and the
no-downtime tests."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Outcome:
    sent: float
    done: float
    ok: bool
    detail: str


class LoadClient(threading.Thread):
    def __init__(self, url: str, model: str, pause_s: float = 0.05, timeout_s: float = 60, max_tokens: int = 16,
                 full_length: bool = False) -> None:  # fmt: skip
        super().__init__(name="load-client", daemon=True)
        self.url, self.model, self.pause_s, self.timeout_s = url, model, pause_s, timeout_s
        self.max_tokens = max_tokens
        self.full_length = full_length  # ignore_eos: every answer exactly max_tokens long
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()

    def run(self) -> None:
        body = {"model": self.model, "prompt": "The capital of France is", "max_tokens": self.max_tokens,
                **({"ignore_eos": True} if self.full_length else {})}  # fmt: skip
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post(f"{self.url}/v1/completions", json=body)
                    ok = r.status_code == 200 and bool(r.json().get("choices"))
                    detail = f"HTTP {r.status_code}" + ("" if ok else f": {r.text[:200]}")
                except (httpx.HTTPError, ValueError) as exc:
                    ok, detail = False, f"{exc.__class__.__name__}: {exc}"
                self.outcomes.append(Outcome(sent, time.monotonic(), ok, detail))
                self.stop.wait(self.pause_s)

    def finish(self) -> dict[str, object]:
        """Stop, and sum up: requests, failures (with the first few), the longest time without a
        successful answer (between two of them, or from the last one to the stop), and the
        slowest request."""
        self.stop.set()
        stopped = time.monotonic()
        self.join(timeout=self.timeout_s + 5)
        done = [o.done for o in self.outcomes if o.ok]
        gaps = [b - a for a, b in itertools.pairwise([*done, stopped])]
        failed = [o for o in self.outcomes if not o.ok]
        return {
            "requests": len(self.outcomes),
            "failed": len(failed),
            "failures": [o.detail for o in failed[:5]],
            "longest_gap_s": max(gaps, default=0.0),
            "slowest_s": max((o.done - o.sent for o in self.outcomes), default=0.0),
        }
