"""Forwarding one HTTP request to an upstream and streaming its answer back (aiohttp), shared by
the API-key gateway and the router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import ClientError, ClientSession, ClientTimeout, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSED = ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events")  # trtllm-serve's control routes
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"})


SESSION = web.AppKey("session", ClientSession)


def proxy_app(handler: Handler, connect_timeout_s: float) -> web.Application:
    """An app sending every route to `handler`, with one client session for the upstream."""

    async def open_session(app: web.Application) -> None:
        app[SESSION] = ClientSession(timeout=ClientTimeout(total=None, sock_connect=connect_timeout_s))

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app = web.Application(client_max_size=64 << 20)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


class BrokenAnswerError(RuntimeError):
    pass


def refused(path: str) -> bool:
    return any(path == r or path.startswith(r + "/") for r in REFUSED)


async def forward(
    session: ClientSession, request: web.Request, upstream: str, body: bytes, drop: frozenset[str] = HOP_BY_HOP
) -> web.StreamResponse:
    """Send the request to `upstream` and stream the answer back. aiohttp's ClientConnectionError
    comes only before the answer starts (nothing reached the client yet); a failure while
    streaming is raised as BrokenAnswerError."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in drop}
    async with session.request(request.method, upstream + request.path_qs, headers=headers, data=body) as upstream_resp:
        kept = {k: v for k, v in upstream_resp.headers.items() if k.lower() not in HOP_BY_HOP}
        resp = web.StreamResponse(status=upstream_resp.status, headers=kept)
        await resp.prepare(request)
        try:
            async for chunk in upstream_resp.content.iter_any():
                await resp.write(chunk)
        except ClientError as exc:
            raise BrokenAnswerError(f"{upstream} broke off its answer: {exc}") from exc
        await resp.write_eof()
        return resp
