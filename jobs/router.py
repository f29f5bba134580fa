"""The router: a stable endpoint for a deployment, in its own long-lived job (profile `router:`).

It forwards every request to a serve job that holds one of the deployment's routes (route.json
for replica 0, route-r<i>.json for replica i: see glm5_hpc/domain/route.py), re-reading them
whenever the directory changes. With several replicas it sends each request to the healthy one
with the fewest requests in flight. It checks every routed server's /health itself every
CHECK_EVERY_S: a server that refuses connections leaves the rotation at once, one that hangs
within a few seconds, and it comes back when it answers again (a serve job's watcher also gives
its route up as soon as its liveness probes fail). When traffic moves to a new serve job (a handover or a no-downtime
redeploy), new requests go to the new server while the old one drains the requests it holds. A
request whose upstream refuses the connection (nothing was sent) goes to another replica, or
waits for a route to come back and is sent again, so a switch costs no failed request.
trtllm-serve's control routes are never forwarded. Built on aiohttp (server and client).
Prometheus metrics at /glm5_hpc/metrics (jobs/router_metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientConnectionError, ClientError, ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST

from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.domain.names import CLUSTER, NODE_ONLY
from glm5_hpc.domain.plan import METRICS_DIR
from glm5_hpc.domain.profile import LOOPBACK
from glm5_hpc.domain.route import ROUTE_FILE, Route, parse_route
from glm5_hpc.domain.status import ROUTER_STATS
from jobs.proxy import SESSION, forward, proxy_app, refused
from jobs.router_metrics import RouterMetrics

RESEND_FOR_S = 30.0  # how long a request may wait for a serve job that answers
RESEND_EVERY_S = 0.1
CHECK_EVERY_S = 0.25  # the router's own /health check of each routed server
CHECK_TIMEOUT_S = 2.0  # a loaded server may answer /health slowly; a hung one is out after 2 of these
CHECK_FAILURES = 2  # consecutive failed checks (or one refused connection) take a server out of the rotation
STATS_EVERY_S = 1.0  # router-stats.json: requests in flight and served per serve job, for glm5_hpc status


class Upstream:
    """One routed serve job as the router sees it."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.in_flight = 0
        self.served = 0
        self.failed = 0  # answers broken off, or connections refused
        self.check_failures = 0
        self.picked_at = 0.0  # ties in requests in flight go to the one picked least recently (round robin)
        self.up = True  # its watcher saw the full ladder pass before it wrote the route

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.route.job_id, "url": self.route.url, "replica": self.route.replica, "up": self.up,
                "in_flight": self.in_flight, "served": self.served, "failed": self.failed}  # fmt: skip


class RouteSet:
    """The deployment's routes, re-read when its directory changes (every route write is a rename
    into it), with each routed server's counters kept across re-reads."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.stamp: int | None = None
        self.routes: dict[int, Route] = {}  # replica -> route
        self.upstreams: dict[str, Upstream] = {}  # job id -> counters

    def current(self) -> list[Upstream]:
        try:
            stamp = self.dir.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp or stamp is None:
            self.stamp = stamp
            self.routes = self._read() if stamp is not None else {}
            for route in self.routes.values():
                known = self.upstreams.get(route.job_id)
                if known is None or known.route.url != route.url:
                    self.upstreams[route.job_id] = Upstream(route)
        return [self.upstreams[r.job_id] for _, r in sorted(self.routes.items())]

    def _read(self) -> dict[int, Route]:
        found: dict[int, Route] = {}
        for entry in os.scandir(self.dir):
            if not ROUTE_FILE.match(entry.name):
                continue
            try:
                route = parse_route(json.loads(Path(entry.path).read_text()))
            except (OSError, ValueError):
                route = self.routes.get(_replica(entry.name))  # gone meanwhile, or unreadable: keep the last good one
            if route is not None:
                found[_replica(entry.name)] = route
        return found

    def first(self) -> Route | None:
        return self.routes[min(self.routes)] if self.routes else None


def _replica(file_name: str) -> int:
    m = ROUTE_FILE.match(file_name)
    return int(m.group(1) or 0) if m else 0


def pick(upstreams: list[Upstream], tried: set[str]) -> Upstream | None:
    """The healthy upstream not yet tried with the fewest requests in flight (then the one picked
    least recently)."""
    ready = [u for u in upstreams if u.up and u.route.job_id not in tried]
    if not ready:
        return None
    chosen = min(ready, key=lambda u: (u.in_flight, u.picked_at))
    chosen.picked_at = time.monotonic()
    return chosen


def make_app(route_file: Path, stats_file: Path | None = None,
             on_change: Callable[[list[str]], None] | None = None) -> web.Application:  # fmt: skip
    """The router's app. `on_change` (the nginx engine) is given the URLs of the replicas that are
    up after every check; nginx then carries the requests and this app only holds those no
    replica took, so its counts are not the replicas' (they are left out of the stats)."""
    routes = RouteSet(route_file.parent)
    metrics = RouterMetrics(route_file.parent / METRICS_DIR)
    started = time.monotonic()

    async def proxy(request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        status: int | str = "error"  # the answer broke off
        try:
            response = await send(request)
            status = response.status
            return response
        finally:
            metrics.answered(request.path, status, time.monotonic() - arrived)

    async def send(request: web.Request) -> web.StreamResponse:
        if refused(request.path):
            return web.json_response({"error": f"{request.path} is refused by the glm5_hpc router"}, status=403)
        body = await request.read()
        deadline = time.monotonic() + RESEND_FOR_S
        last = "no serve job of this deployment is healthy yet"
        tried: set[str] = set()
        while True:
            upstream = pick(routes.current(), tried)
            if upstream is not None:
                upstream.in_flight += 1
                try:
                    response = await forward(request.app[SESSION], request, upstream.route.url, body)
                    upstream.served += 1
                    return response
                except ClientConnectionError as exc:  # before the answer started: safe to send elsewhere
                    last = f"serve job {upstream.route.job_id} at {upstream.route.url}: {exc.__class__.__name__}"
                    upstream.failed += 1
                    upstream.up = False  # until its next /health check passes
                    tried.add(upstream.route.job_id)
                    metrics.retries.inc()
                    continue
                except BaseException:
                    upstream.failed += 1
                    raise
                finally:
                    upstream.in_flight -= 1
            if time.monotonic() > deadline:
                return web.json_response({"error": f"glm5_hpc router: {last}"}, status=503)
            tried.clear()  # every routed server refused: wait for one to come (back) and try them all again
            await asyncio.sleep(RESEND_EVERY_S)

    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def route_info(_request: web.Request) -> web.Response:
        first = routes.first()
        return web.json_response({**(first.to_json() if first else {}), "replicas": [u.to_json() for u in routes.current()]})

    async def check(session: ClientSession, upstream: Upstream) -> None:
        try:
            async with session.get(upstream.route.url + "/health", timeout=ClientTimeout(total=CHECK_TIMEOUT_S)) as r:
                ok = r.status < 500  # 401: a gateway that wants a key for more than /health; still alive
        except (ClientError, TimeoutError):
            ok = False
        upstream.check_failures = 0 if ok else upstream.check_failures + 1
        upstream.up = ok or (upstream.up and upstream.check_failures < CHECK_FAILURES)

    async def checks(app: web.Application) -> None:
        last_stats: list[Any] | None = None
        next_stats = 0.0
        while True:
            current = routes.current()
            await asyncio.gather(*(check(app[SESSION], u) for u in current))
            metrics.upstreams(current)
            if on_change is not None:
                try:
                    on_change([u.route.url for u in current if u.up])
                except OSError as exc:  # the next round tries again; the checks go on
                    print(f"glm5_hpc: router: could not update nginx: {exc}", file=sys.stderr, flush=True)
            if stats_file is not None and time.monotonic() >= next_stats:
                stats = [u.to_json() | ({"in_flight": None, "served": None} if on_change else {}) for u in current]
                minute = None if on_change else metrics.last_minute(started)  # nginx carries the traffic: not seen here
                if [stats, minute] != last_stats:
                    write_json_atomic(stats_file, {"at": time.time(), "replicas": stats, "last_minute": minute})
                    last_stats = [stats, minute]
                next_stats = time.monotonic() + STATS_EVERY_S
            await asyncio.sleep(CHECK_EVERY_S)

    async def start_checks(app: web.Application) -> None:
        app[CHECKS] = asyncio.create_task(checks(app))

    async def stop_checks(app: web.Application) -> None:
        app[CHECKS].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[CHECKS]

    app = proxy_app(proxy, connect_timeout_s=5)
    app.router.add_get("/glm5_hpc/route", route_info)  # matched before the catch-all
    app.router.add_get("/glm5_hpc/metrics", scrape)
    app.on_startup.append(start_checks)
    app.on_cleanup.insert(0, stop_checks)
    return app


CHECKS = web.AppKey("checks", asyncio.Task[None])


def run_router(route_file: str, router_file: str, host: str, port: int, engine: str = "python", nginx: str = "nginx",
               workers: int = 1) -> None:  # fmt: skip
    """The router job's body (run by submitit): serve until Slurm ends the job. With the nginx
    engine, nginx listens on host:port and this app on a loopback port behind it."""
    from glm5_hpc.adapters.endpoint import node_address, node_name

    node = node_name()
    address = "127.0.0.1" if host in LOOPBACK else node_address(node)
    job_id = os.environ.get("SLURM_JOB_ID", "")

    async def announce(_app: web.Application) -> None:
        scope = NODE_ONLY if host in LOOPBACK else CLUSTER
        doc = {"job_id": job_id, "url": f"http://{address}:{port}", "node": node, "host": host, "scope": scope, "at": time.time()}
        write_json_atomic(Path(router_file), doc)
        print(f"glm5_hpc: router on {host}:{port} ({socket.getfqdn(node)}) following {route_file}", flush=True)

    import uvloop

    if engine != "nginx":
        app = make_app(Path(route_file), stats_file(router_file))
        app.on_startup.append(announce)
        web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True, loop=uvloop.new_event_loop())
        return
    from jobs.router_nginx import NginxFront

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        hold_port = int(s.getsockname()[1])
    # beside the router job's logs (the deployment's router/ folder): its config, pid, error log and temp dirs
    front = NginxFront(nginx, Path(router_file).with_name("router") / f"nginx-{job_id}", host, port, hold_port, workers)
    app = make_app(Path(route_file), stats_file(router_file), on_change=front.update)

    async def start_front(_app: web.Application) -> None:
        front.start()

    async def stop_front(_app: web.Application) -> None:
        front.stop()

    app.on_startup.extend([start_front, announce])
    app.on_cleanup.append(stop_front)
    web.run_app(app, host="127.0.0.1", port=hold_port, print=None, access_log=None, handle_signals=True,
                loop=uvloop.new_event_loop())  # fmt: skip


def stats_file(router_file: str) -> Path:
    """router-stats.json beside router.json: per serve job, requests in flight, served and failed."""
    return Path(router_file).with_name(ROUTER_STATS)
