"""The router's Prometheus metrics (prometheus-client), served at /glm5_hpc/metrics on its port,
with the serve jobs' watchers' metrics (their textfiles in the deployment's metrics/ folder)
merged in, so one scrape of the stable endpoint covers the deployment. Also the last minute's
request rate and median latency, for `glm5_hpc status`.

Names (docs/metrics.md): glm5_router_requests_total{route,status}, glm5_router_request_seconds{route},
glm5_router_retries_total, glm5_router_upstream_up{replica,job_id},
glm5_router_upstream_in_flight{replica,job_id}, glm5_router_route_changes_total; the watchers'
glm5_watcher_* (jobs/watcher.py).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/health_generate", "/version", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WINDOW_S = 60.0
MEDIAN_OF = 5000
WATCHER_FRESH_S = 120.0  # a watcher rewrites its textfile at least every liveness interval; older ones are gone


def route_label(path: str) -> str:
    """A bounded label: the OpenAI routes and trtllm-serve's own, everything else "other"."""
    return path if path in ROUTES else "other"


class WatcherFiles:
    """A collector for the watchers' textfiles, each family merged across files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        now = time.time()
        for path in sorted(self.folder.glob("watcher-*.prom")) if self.folder.is_dir() else []:
            try:
                if now - path.stat().st_mtime > WATCHER_FRESH_S:
                    continue
                families = list(text_string_to_metric_families(path.read_text()))
            except (OSError, ValueError):
                continue  # rewritten or removed meanwhile; the next scrape reads it
            for family in families:
                known = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                known.samples.extend(family.samples)
        yield from merged.values()


class RouterMetrics:
    def __init__(self, watcher_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("glm5_router_requests", "Requests answered, by route and HTTP status",
                                ["route", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("glm5_router_request_seconds", "Time from a request's arrival to its answer's end",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.retries = Counter("glm5_router_retries", "Requests sent again after a server refused the connection",
                               registry=self.registry)  # fmt: skip
        self.up = Gauge("glm5_router_upstream_up", "1 while a routed serve job passes the router's health checks",
                        ["replica", "job_id"], registry=self.registry)  # fmt: skip
        self.in_flight = Gauge("glm5_router_upstream_in_flight", "Requests in flight to a routed serve job",
                               ["replica", "job_id"], registry=self.registry)  # fmt: skip
        self.route_changes = Counter("glm5_router_route_changes", "Changes of the serve jobs the routes name "
                                     "(handovers, redeploys, replicas added or removed)", registry=self.registry)  # fmt: skip
        if watcher_dir is not None:
            self.registry.register(WatcherFiles(watcher_dir))
        self.window: deque[tuple[float, float]] = deque()  # (finished at, seconds) of the last minute's requests
        self.routed: frozenset[tuple[int, str]] | None = None

    def answered(self, path: str, status: int | str, seconds: float) -> None:
        route = route_label(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        now = time.monotonic()
        self.window.append((now, seconds))
        self._trim(now)

    def upstreams(self, current: Iterable[Any]) -> None:
        """The routed serve jobs after a round of checks (jobs/router.py's Upstream objects)."""
        self.up.clear()
        self.in_flight.clear()
        routed = []
        for u in current:
            labels = (str(u.route.replica), u.route.job_id)
            self.up.labels(*labels).set(1 if u.up else 0)
            self.in_flight.labels(*labels).set(u.in_flight)
            routed.append((u.route.replica, u.route.job_id))
        if self.routed is not None and frozenset(routed) != self.routed:
            self.route_changes.inc()
        self.routed = frozenset(routed)

    def last_minute(self, started: float) -> dict[str, float]:
        """Requests per second over the last minute (or since the router started) and their median latency."""
        now = time.monotonic()
        self._trim(now)
        span = max(1.0, min(WINDOW_S, now - started))
        # the median of the newest MEDIAN_OF requests: sorting a busy minute's (4,000/s) would stall the event loop
        newest = [s for _, s in itertools.islice(reversed(self.window), MEDIAN_OF)]
        return {"requests": len(self.window), "requests_s": round(len(self.window) / span, 3),
                "p50_ms": round(statistics.median(newest) * 1000, 1) if newest else 0.0}  # fmt: skip

    def _trim(self, now: float) -> None:
        while self.window and self.window[0][0] < now - WINDOW_S:
            self.window.popleft()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
