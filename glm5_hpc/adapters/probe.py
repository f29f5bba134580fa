"""HTTP probes of a trtllm-serve endpoint: the ladder /health -> /v1/models -> a checked completion.

Exceptions that mean "not answering yet" (httpx.TransportError: connect refused, timeouts, resets)
become failed verdicts; nothing else is swallowed. Every request has an explicit timeout.
"""

from __future__ import annotations

import time

import httpx

from glm5_hpc.domain.health import Verdict, judge_completion, judge_health, judge_models


def _json(resp: httpx.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return None


def probe_health(client: httpx.Client, url: str, timeout_s: float) -> Verdict:
    try:
        resp = client.get(f"{url}/health", timeout=timeout_s)
    except httpx.TransportError as exc:
        return Verdict("health", False, f"GET /health: {type(exc).__name__}: {exc}", time.time(), replied=False)
    return judge_health(resp.status_code, time.time())


def run_ladder(
    client: httpx.Client,
    url: str,
    model_id: str,
    prompt: str,
    expect: str,
    max_tokens: int,
    request_timeout_s: float,
    completion_timeout_s: float,
) -> list[Verdict]:
    """Climb the ladder; stop at the first failed rung. Returns the verdicts in order."""
    verdicts = [probe_health(client, url, request_timeout_s)]
    if not verdicts[-1].ok:
        return verdicts
    try:
        resp = client.get(f"{url}/v1/models", timeout=request_timeout_s)
        v = judge_models(resp.status_code, _json(resp), model_id, time.time())
    except httpx.TransportError as exc:
        v = Verdict("models", False, f"GET /v1/models: {type(exc).__name__}: {exc}", time.time(), replied=False)
    verdicts.append(v)
    if not v.ok:
        return verdicts
    try:
        resp = client.post(
            f"{url}/v1/completions",
            json={"model": model_id, "prompt": prompt, "max_tokens": max_tokens},
            timeout=completion_timeout_s,
        )
        v = judge_completion(resp.status_code, _json(resp), expect, time.time())
    except httpx.TransportError as exc:
        v = Verdict("completion", False, f"POST /v1/completions: {type(exc).__name__}: {exc}", time.time(), replied=False)
    verdicts.append(v)
    return verdicts
