"""HTTP probes of a trtllm-serve endpoint: the ladder /health -> /v1/models -> a checked completion.

Exceptions that mean "not answering" (httpx.TransportError: connect refused, timeouts, resets)
become failed verdicts with replied=False; nothing else is swallowed. Every request has a total
deadline (httpx's timeouts are per read, so a server trickling bytes would never trip them) and
a body limit, so a broken or hostile server cannot stall or exhaust the watcher.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any

import httpx

from glm5_hpc.domain.health import Verdict, judge_completion, judge_health, judge_models

MAX_BODY_BYTES = 1 << 20


class ReplyError(Exception):
    """The server answered, but not with something a probe can use (too large)."""


def fetch(
    client: httpx.Client, method: str, url: str, timeout_s: float, payload: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request whose reply, headers included, must be complete within `timeout_s`: at the
    deadline the connection is shut down, however slowly the server is still sending."""
    deadline = time.monotonic() + timeout_s
    sockets: list[socket.socket] = []

    def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete" and (sock := info["return_value"].get_extra_info("socket")):
            sockets.append(sock)

    def cut() -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout_s, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        with client.stream(method, url, json=payload, timeout=timeout_s, headers=headers, extensions={"trace": trace}) as resp:
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise ReplyError(f"reply larger than {MAX_BODY_BYTES} bytes")
                if time.monotonic() > deadline:
                    break
    except httpx.TimeoutException:
        pass  # httpx's own timeout and the deadline fall together: one message for both
    except httpx.TransportError:
        if time.monotonic() < deadline:
            raise
    else:
        if time.monotonic() <= deadline:
            return resp.status_code, bytes(body)
    finally:
        watchdog.cancel()
    raise httpx.ReadTimeout(f"reply not complete within {timeout_s:g}s")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _failed(rung: str, what: str, exc: Exception) -> Verdict:
    return Verdict(rung, False, f"{what}: {type(exc).__name__}: {exc}", time.time(), replied=isinstance(exc, ReplyError))


def probe_health(client: httpx.Client, url: str, timeout_s: float) -> Verdict:
    try:
        status, _ = fetch(client, "GET", f"{url}/health", timeout_s)
    except (httpx.TransportError, ReplyError) as exc:
        return _failed("health", "GET /health", exc)
    return judge_health(status, time.time())


def run_ladder(
    client: httpx.Client, url: str, model_id: str, prompt: str, expect: str, max_tokens: int,
    request_timeout_s: float, completion_timeout_s: float, headers: dict[str, str] | None = None,
) -> list[Verdict]:  # fmt: skip
    """Climb the ladder; stop at the first failed rung. Returns the verdicts in order."""
    verdicts = [probe_health(client, url, request_timeout_s)]
    if not verdicts[-1].ok:
        return verdicts
    try:
        status, body = fetch(client, "GET", f"{url}/v1/models", request_timeout_s, headers=headers)
        v = judge_models(status, _json(body), model_id, time.time())
    except (httpx.TransportError, ReplyError) as exc:
        v = _failed("models", "GET /v1/models", exc)
    verdicts.append(v)
    if not v.ok:
        return verdicts
    request = {"model": model_id, "prompt": prompt, "max_tokens": max_tokens}
    try:
        status, body = fetch(client, "POST", f"{url}/v1/completions", completion_timeout_s, request, headers)
        v = judge_completion(status, _json(body), expect, time.time())
    except (httpx.TransportError, ReplyError) as exc:
        v = _failed("completion", "POST /v1/completions", exc)
    verdicts.append(v)
    return verdicts
