"""The router: a stable endpoint for a deployment, in its own long-lived job (profile `router:`).

It forwards every request to the serve job that holds the deployment's route (route.json, see
glm5_hpc/domain/route.py), re-reading the file whenever it changes. When traffic moves to a new
serve job (a handover or a no-downtime redeploy), new requests go to the new server while the
old one drains the requests it holds. A request whose upstream refuses the connection (nothing
was sent) waits for the route to move and is sent again, so a switch costs no failed request.
trtllm-serve's control routes are never forwarded. Built on aiohttp (server and client).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

from aiohttp import ClientConnectionError, web

from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.domain.profile import LOOPBACK
from glm5_hpc.domain.reach import CLUSTER, NODE_ONLY
from glm5_hpc.domain.route import Route, parse_route
from jobs.proxy import SESSION, forward, proxy_app, refused

RESEND_FOR_S = 30.0  # how long a request may wait for a serve job that answers
RESEND_EVERY_S = 0.1


class RouteFile:
    """The current route, re-read when the file's mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.route: Route | None = None

    def current(self) -> Route | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.stamp, self.route = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self.stamp:
            try:
                self.route = parse_route(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                return self.route  # a partial read cannot happen (atomic writes); keep the last good one
            self.stamp = stamp
        return self.route


def make_app(route_file: Path) -> web.Application:
    routes = RouteFile(route_file)

    async def proxy(request: web.Request) -> web.StreamResponse:
        if refused(request.path):
            return web.json_response({"error": f"{request.path} is refused by the glm5_hpc router"}, status=403)
        body = await request.read()
        deadline = time.monotonic() + RESEND_FOR_S
        last = "no serve job of this deployment is healthy yet"
        while True:
            route = routes.current()
            if route is not None:
                try:
                    return await forward(request.app[SESSION], request, route.url, body)
                except ClientConnectionError as exc:  # before the answer started: safe to send again
                    last = f"serve job {route.job_id} at {route.url}: {exc.__class__.__name__}"
            if time.monotonic() > deadline:
                return web.json_response({"error": f"glm5_hpc router: {last}"}, status=503)
            await asyncio.sleep(RESEND_EVERY_S)

    async def route_info(_request: web.Request) -> web.Response:
        route = routes.current()
        return web.json_response(route.to_json() if route else {})

    app = proxy_app(proxy, connect_timeout_s=5)
    app.router.add_get("/glm5_hpc/route", route_info)  # matched before the catch-all
    return app


def run_router(route_file: str, router_file: str, host: str, port: int) -> None:
    """The router job's body (run by submitit): serve until Slurm ends the job."""
    from glm5_hpc.adapters.endpoint import node_address, node_name

    node = node_name()
    address = "127.0.0.1" if host in LOOPBACK else node_address(node)
    job_id = os.environ.get("SLURM_JOB_ID", "")

    async def announce(_app: web.Application) -> None:
        scope = NODE_ONLY if host in LOOPBACK else CLUSTER
        doc = {"job_id": job_id, "url": f"http://{address}:{port}", "node": node, "host": host, "scope": scope, "at": time.time()}
        write_json_atomic(Path(router_file), doc)
        print(f"glm5_hpc: router on {host}:{port} ({socket.getfqdn(node)}) following {route_file}", flush=True)

    app = make_app(Path(route_file))
    app.on_startup.append(announce)
    web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)
