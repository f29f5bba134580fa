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

from aiohttp import ClientSession, ClientTimeout, web

REFUSED = ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "authorization"}


def make_app(upstream: str, api_key: str) -> web.Application:
    expected = f"Bearer {api_key}".encode()

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.path
        if any(path == r or path.startswith(r + "/") for r in REFUSED):
            return web.json_response({"error": f"{path} is refused by the glm5_hpc gateway"}, status=403)
        if not (request.method == "GET" and path == "/health"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "missing or wrong API key (Authorization: Bearer ...)"}, status=401)
        session: ClientSession = request.app["session"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session.request(
            request.method, upstream + request.path_qs, headers=headers, data=await request.read()
        ) as upstream_resp:
            kept = {k: v for k, v in upstream_resp.headers.items() if k.lower() not in HOP_BY_HOP}
            resp = web.StreamResponse(status=upstream_resp.status, headers=kept)
            await resp.prepare(request)
            async for chunk in upstream_resp.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def open_session(app: web.Application) -> None:
        app["session"] = ClientSession(timeout=ClientTimeout(total=None, sock_connect=10))

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application(client_max_size=64 << 20)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


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
