"""The router (jobs/router.py) against real HTTP upstreams on loopback: it follows the route files,
spreads requests over replicas by requests in flight, takes a server that stops answering out of
the rotation, sends a request again (elsewhere) when its upstream refuses the connection, and
never forwards control routes."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from glm5_hpc.domain.route import Route, may_claim, slot_to_free, superseded
from jobs import router
from jobs.router_nginx import NginxFront
from tests.conftest import eventually


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


def upstream(name: str, delay_s: float = 0.0, hung: threading.Event | None = None) -> Server:
    """An upstream answering every request with its name, after delay_s; while `hung` is set,
    /health never answers (a server that stopped responding)."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/health":
            if hung is not None and hung.is_set():
                await asyncio.sleep(3600)
        else:
            await asyncio.sleep(delay_s)
        return web.json_response({"served_by": name, "path": request.path, "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = Server(app, free_port())
    server.start()
    assert server.ready.wait(10)
    return server


def set_route(path: Path, job_id: str, port: int, replica: int = 0) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(Route(job_id, f"http://127.0.0.1:{port}", time.time(), replica).to_json()))
    tmp.replace(path)


def replicas_seen(url: str) -> dict[str, dict[str, object]]:
    return {r["job_id"]: r for r in httpx.get(f"{url}/glm5_hpc/route").json()["replicas"]}


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


def test_requests_are_spread_over_replicas_by_requests_in_flight(routed: tuple[str, Path]) -> None:
    url, route_file = routed
    a, b = upstream("a", delay_s=0.5), upstream("b", delay_s=0.5)
    set_route(route_file, "100", a.port)
    set_route(route_file.with_name("route-r1.json"), "101", b.port, replica=1)
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda _: httpx.post(f"{url}/v1/completions", timeout=20).json()["served_by"], range(8)))
    assert sorted(served) == ["a"] * 4 + ["b"] * 4  # each new request went to the replica with fewer in flight
    seen = replicas_seen(url)
    assert [(seen[j]["replica"], seen[j]["served"], seen[j]["in_flight"]) for j in ("100", "101")] == [(0, 4, 0), (1, 4, 0)]


def test_a_replica_that_refuses_or_stops_answering_leaves_the_rotation(routed: tuple[str, Path]) -> None:
    url, route_file = routed
    hung = threading.Event()
    a, b = upstream("a"), upstream("b", hung=hung)
    set_route(route_file, "100", a.port)
    set_route(route_file.with_name("route-r1.json"), "101", free_port(), replica=1)  # its node is gone: refused
    assert {httpx.get(f"{url}/v1/models").json()["served_by"] for _ in range(6)} == {"a"}  # refused ones are sent again
    assert replicas_seen(url)["101"]["up"] is False
    set_route(route_file.with_name("route-r1.json"), "102", b.port, replica=1)  # a new job for replica 1
    assert eventually(lambda: replicas_seen(url)["102"]["up"] is True)
    assert {httpx.get(f"{url}/v1/models").json()["served_by"] for _ in range(6)} == {"a", "b"}
    hung.set()  # b accepts connections but its /health never answers: the router's own check takes it out
    assert eventually(lambda: replicas_seen(url)["102"]["up"] is False, timeout_s=10, interval_s=0.1)
    assert {httpx.get(f"{url}/v1/models").json()["served_by"] for _ in range(6)} == {"a"}
    hung.clear()
    assert eventually(lambda: replicas_seen(url)["102"]["up"] is True, timeout_s=10, interval_s=0.1)  # back once it answers


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


def test_with_no_free_node_an_old_replica_makes_room_but_never_the_last_one() -> None:
    assert slot_to_free(0, {0, 1}, new_healthy=0) == 0  # the slot being replaced, while the other serves
    assert slot_to_free(1, {1}, new_healthy=1) == 1  # the new replica 0 serves meanwhile
    assert slot_to_free(1, {0, 2}, new_healthy=0) == 2  # slot 1 scaled away earlier: the highest old one
    assert slot_to_free(0, {0}, new_healthy=0) is None  # one replica: taking it out is downtime
    assert slot_to_free(0, set(), new_healthy=2) is None


@pytest.fixture
def nginx_routed(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The nginx engine as the router job runs it: nginx on the public port, the Python router
    on a loopback port behind it, holding what no replica takes."""
    route_file = tmp_path / "route.json"
    hold = free_port()
    front = NginxFront("nginx", tmp_path / "nginx", "127.0.0.1", free_port(), hold, 1)
    server = Server(router.make_app(route_file, on_change=front.update), hold)
    server.start()
    assert server.ready.wait(10)
    front.start()
    yield f"http://{front.listen}", route_file
    front.stop()


def test_the_nginx_engine_balances_holds_and_skips_replicas_that_stop_answering(nginx_routed: tuple[str, Path]) -> None:
    url, route_file = nginx_routed
    hung = threading.Event()
    a, b = upstream("a", delay_s=0.5), upstream("b", delay_s=0.5, hung=hung)
    set_route(route_file, "100", a.port)
    set_route(route_file.with_name("route-r1.json"), "101", b.port, replica=1)
    assert eventually(lambda: f"127.0.0.1:{b.port}" in (route_file.parent / "nginx" / "nginx.conf").read_text())
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(lambda _: httpx.post(f"{url}/v1/completions", timeout=20).json()["served_by"], range(8)))
    assert sorted(served) == ["a"] * 4 + ["b"] * 4  # least_conn: the fewest requests in flight
    hung.set()
    assert eventually(lambda: replicas_seen(url)["101"]["up"] is False, timeout_s=10, interval_s=0.1)
    assert {httpx.get(f"{url}/v1/models").json()["served_by"] for _ in range(4)} == {"a"}
    route_file.unlink()
    route_file.with_name("route-r1.json").unlink()  # no replica: nginx sends requests to the holding router
    assert eventually(lambda: f"127.0.0.1:{a.port}" not in (route_file.parent / "nginx" / "nginx.conf").read_text())
    threading.Timer(1.0, set_route, (route_file, "102", upstream("c").port)).start()
    assert httpx.post(f"{url}/v1/completions", content=b"{}", timeout=20).json()["served_by"] == "c"
    r = httpx.post(f"{url}/update_weights", content=b"{}")
    assert r.status_code == 403 and "refused by the glm5_hpc router" in r.json()["error"]


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/glm5_hpc/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_metrics_count_what_the_clients_sent_under_load(tmp_path: Path) -> None:
    """Four clients send completions through the router to two replicas, one of which refuses
    connections for a while; the scrape's counts equal what the clients saw, the refused
    connections show as retries, and a watcher's textfile is served with the router's metrics."""
    from glm5_hpc.domain.health import Verdict
    from jobs.watcher import WatcherMetrics

    route_file = tmp_path / "route.json"
    server = Server(router.make_app(route_file, tmp_path / "router-stats.json"), free_port())
    server.start()
    assert server.ready.wait(10)
    url = f"http://127.0.0.1:{server.port}"
    a, b = upstream("a", delay_s=0.01), upstream("b", delay_s=0.01)
    set_route(route_file, "100", a.port)
    set_route(route_file.with_name("route-r1.json"), "101", free_port(), replica=1)  # nothing listens there yet
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: httpx.post(f"{url}/v1/completions", timeout=30).status_code, range(200)))
    set_route(route_file.with_name("route-r1.json"), "102", b.port, replica=1)
    refused = [httpx.post(f"{url}/update_weights").status_code for _ in range(3)]
    assert codes == [200] * 200 and refused == [403] * 3
    watcher = WatcherMetrics(tmp_path / "metrics" / "watcher-100.prom", "100", 0)
    watcher.write({"phase": "ready", "restarts": 1, "started_at": 10.0, "ready_at": 25.5, "route": "holder"},
                  [Verdict("completion", True, "Paris")])  # fmt: skip

    def counted() -> bool:
        s = samples(url)
        return s.get(("glm5_router_upstream_up", (("job_id", "102"), ("replica", "1")))) == 1.0

    assert eventually(counted, timeout_s=10)  # the checks found the new replica 1 up
    s = samples(url)
    assert s[("glm5_router_requests_total", (("route", "/v1/completions"), ("status", "200")))] == 200
    assert s[("glm5_router_request_seconds_count", (("route", "/v1/completions"),))] == 200
    assert s[("glm5_router_requests_total", (("route", "other"), ("status", "403")))] == 3
    assert s[("glm5_router_retries_total", ())] >= 1  # the refused connections to replica 1 were sent again to replica 0
    assert (
        s[("glm5_router_route_changes_total", ())] >= 1
        and s[("glm5_router_upstream_up", (("job_id", "100"), ("replica", "0")))] == 1
    )
    assert s[("glm5_watcher_ready", (("job_id", "100"), ("replica", "0")))] == 1
    assert s[("glm5_watcher_seconds_to_ready", (("job_id", "100"), ("replica", "0")))] == 15.5
    assert s[("glm5_watcher_probes_total", (("job_id", "100"), ("replica", "0"), ("result", "ok"), ("rung", "completion")))] == 1
    assert eventually(lambda: json.loads((tmp_path / "router-stats.json").read_text())["last_minute"]["requests"] >= 203, 5)
