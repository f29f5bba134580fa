"""The opt-in API-key gateway (profile `gateway:`), run by the serve job beside the server.

trtllm-serve has no API key option and serves unauthenticated control routes. With the gateway,
the server binds the node's loopback on a private port and only the gateway listens outside:
every request needs `Authorization: Bearer <key>` (except GET /health, for monitoring), and
the control routes are refused whatever the key. Built on aiohttp (server and client).
"""

from __future__ import annotations

import asyncio
import hmac
import threading

from aiohttp import web

from jobs.proxy import HOP_BY_HOP, SESSION, forward, proxy_app, refused

DROPPED = HOP_BY_HOP | {"authorization"}  # the key stops here


def make_app(upstream: str, api_key: str) -> web.Application:
    expected = f"Bearer {api_key}".encode()

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.path
        if refused(path):
            return web.json_response({"error": f"{path} is refused by the glm5_hpc gateway"}, status=403)
        if not (request.method == "GET" and path == "/health"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "missing or wrong API key (Authorization: Bearer ...)"}, status=401)
        return await forward(request.app[SESSION], request, upstream, await request.read(), DROPPED)

    return proxy_app(proxy, connect_timeout_s=10)


class Gateway(threading.Thread):
    """The gateway's event loop in a thread of the serve job; it ends with the job."""

    def __init__(self, host: str, port: int, upstream: str, api_key: str) -> None:
        super().__init__(name="glm5-gateway", daemon=True)
        self.host, self.port, self.upstream, self.api_key = host, port, upstream, api_key
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by the serve job, which then fails instead of serving unguarded
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        runner = web.AppRunner(make_app(self.upstream, self.api_key), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.ready.set()
        await asyncio.Event().wait()
