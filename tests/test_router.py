"""The router (jobs/router.py) against real HTTP upstreams on loopback: it follows the route file,
sends a request again when its upstream refuses the connection, and never forwards control routes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from glm5_hpc.domain.route import Route, may_claim, superseded
from jobs import router


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server(threading.Thread):
    """An aiohttp app on its own event loop, on 127.0.0.1:port, until the test ends."""

    def __init__(self, app: web.Application, port: int) -> None:
        super().__init__(daemon=True)
        self.app, self.port, self.ready = app, port, threading.Event()
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()


def upstream(name: str) -> Server:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"served_by": name, "path": request.path, "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = Server(app, free_port())
    server.start()
    assert server.ready.wait(10)
    return server


def set_route(path: Path, job_id: str, port: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(Route(job_id, f"http://127.0.0.1:{port}", time.time()).to_json()))
    tmp.replace(path)


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    route_file = tmp_path / "route.json"
    server = Server(router.make_app(route_file), free_port())
    server.start()
    assert server.ready.wait(10)
    yield f"http://127.0.0.1:{server.port}", route_file


def test_follows_the_route_file(routed: tuple[str, Path]) -> None:
    url, route_file = routed
    a, b = upstream("a"), upstream("b")
    set_route(route_file, "100", a.port)
    r = httpx.post(f"{url}/v1/completions?x=1", content=b'{"prompt": "hi"}')
    assert r.json() == {"served_by": "a", "path": "/v1/completions", "body": '{"prompt": "hi"}'}
    set_route(route_file, "101", b.port)
    assert httpx.get(f"{url}/health").json()["served_by"] == "b"
    assert httpx.get(f"{url}/glm5_hpc/route").json()["job_id"] == "101"


def test_a_refused_connection_waits_for_the_route_to_move(routed: tuple[str, Path]) -> None:
    url, route_file = routed
    b = upstream("b")
    set_route(route_file, "100", free_port())  # nothing listens there: the old server is gone
    threading.Timer(1.0, set_route, (route_file, "101", b.port)).start()
    r = httpx.post(f"{url}/v1/completions", content=b"{}", timeout=20)
    assert r.status_code == 200 and r.json()["served_by"] == "b"


def test_no_route_is_a_503_naming_the_cause(routed: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = routed
    monkeypatch.setattr(router, "RESEND_FOR_S", 0.5)
    r = httpx.get(f"{url}/v1/models", timeout=10)
    assert r.status_code == 503 and "no serve job of this deployment is healthy yet" in r.json()["error"]


def test_control_routes_are_never_forwarded(routed: tuple[str, Path]) -> None:
    url, route_file = routed
    set_route(route_file, "100", upstream("a").port)
    for path in ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events", "/update_weights/x"):
        r = httpx.post(f"{url}{path}", content=b"{}")
        assert r.status_code == 403 and "refused by the glm5_hpc router" in r.json()["error"]


def test_only_a_newer_job_takes_the_route() -> None:
    held = Route("1200", "http://n:1", 0.0)
    assert may_claim(None, "5") and may_claim(held, "1200") and may_claim(held, "1201")
    assert not may_claim(held, "1199") and not may_claim(held, "999")  # numeric, not text, order
    assert superseded(held, "1199") and not superseded(held, "1200") and not superseded(None, "1")
