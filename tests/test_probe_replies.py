"""Broken server replies against the real probe code over real loopback sockets: invalid JSON,
a huge body, a server that trickles bytes. Each gives a failed verdict, never a hang or a crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from glm5_hpc.adapters.probe import MAX_BODY_BYTES, probe_health, run_ladder


class Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, body: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "trickle-headers":  # a status line and headers, one byte at a time
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 300 + b"\r\nContent-Length: 0\r\n\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        if self.path == "/health" and mode != "trickle":
            self.reply(b"")
        elif mode == "invalid-json":
            self.reply(b'{"object": "list", "data": [')
        elif mode == "huge":
            size = 50 * MAX_BODY_BYTES
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the probe stopped reading, as it should
        elif mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_invalid_json_fails_the_models_rung(server: ThreadingHTTPServer) -> None:
    server.mode = "invalid-json"  # type: ignore[attr-defined]
    with httpx.Client() as client:
        verdicts = run_ladder(client, url(server), "GLM-5-nvfp4-v1", "The capital of France is", "Paris", 50, 2, 2)
    assert [v.ok for v in verdicts] == [True, False]
    assert verdicts[1].detail == "/v1/models lists [], not 'GLM-5-nvfp4-v1'"


def test_huge_body_is_cut_off(server: ThreadingHTTPServer) -> None:
    server.mode = "huge"  # type: ignore[attr-defined]
    with httpx.Client() as client:
        verdicts = run_ladder(client, url(server), "m", "p", "x", 5, 10, 10)
    assert verdicts[1].detail == f"GET /v1/models: ReplyError: reply larger than {MAX_BODY_BYTES} bytes"
    assert verdicts[1].replied  # it answered, wrongly


@pytest.mark.parametrize("mode", ["trickle", "trickle-headers"])
def test_trickling_server_hits_the_total_deadline(server: ThreadingHTTPServer, mode: str) -> None:
    """A body or the headers themselves one byte every 0.2 s: each byte would restart a per-read timeout."""
    server.mode = mode  # type: ignore[attr-defined]
    result: list[object] = []
    with httpx.Client() as client:
        worker = threading.Thread(target=lambda: result.append(probe_health(client, url(server), 1.0)))
        worker.start()
        worker.join(timeout=60)  # 100 bytes (or 330 of headers) at 0.2 s each: 20 s or more; the deadline is 1 s
    assert not worker.is_alive()
    (verdict,) = result
    assert verdict.detail == "GET /health: ReadTimeout: reply not complete within 1s"  # type: ignore[attr-defined]
    assert not verdict.replied  # type: ignore[attr-defined]
