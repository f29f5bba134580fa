"""`glm5_hpc probe`: the probe ladder once, from where the command runs, rung by rung. An
endpoint that answers on its serve node only (a loopback bind, a container bridge IP) is probed
through a step of the serve job on that node, over a private local port (app/tunnel.py)."""

from __future__ import annotations

import json
import sys
import threading

import httpx

from glm5_hpc.adapters.node_relay import needs_relay, open_local
from glm5_hpc.adapters.probe import ReplyError, fetch, run_ladder
from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.adapters.secrets import read_secret
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.status import status
from glm5_hpc.domain.health import RUNGS, Verdict
from glm5_hpc.domain.profile import Health
from glm5_hpc.domain.reach import Reach, serve_reach_of
from glm5_hpc.domain.record import profile_of
from glm5_hpc.errors import InputError

__all__ = ["RUNGS", "probe"]


def probe(name: str | None, url: str | None, model_id: str | None, store: Store | None = None) -> tuple[str, list[Verdict]]:
    """Returns (url probed, verdicts). A deployment's own health settings apply when NAME is given;
    its status is read once, and a node-only endpoint is probed through its serve job."""
    health = Health()
    headers: dict[str, str] | None = None
    relay: Reach | None = None
    if name is not None:
        store = store or Store()
        (st,) = status([name], store)
        if not st.endpoint:
            raise InputError(f"deployment {name!r} has no endpoint now (serve job {st.phase}); see glm5_hpc status {name}")
        reach = serve_reach_of(st.to_json())
        if url is None and reach is not None and needs_relay(reach):
            relay = reach
        url = url or st.endpoint
        profile = load_profile(profile_of(store.require(name)))
        health, model_id = profile.health, model_id or profile.model_path.name
        if profile.gateway.enabled and profile.gateway.api_key is not None:
            headers = {"Authorization": f"Bearer {read_secret('gateway.api_key', profile.gateway.api_key)}"}
    if url is None:
        raise InputError("give a deployment NAME or --url URL")
    if relay is None:
        return url.rstrip("/"), _ladder(url.rstrip("/"), model_id, health, headers)
    from glm5_hpc.app.tunnel import Tunnel

    tunnel = Tunnel(0, lambda: relay, lambda r: open_local(r, sys.executable), lambda _line: None)
    tunnel.current = relay
    threading.Thread(target=tunnel.serve, kwargs={"refresh": False}, daemon=True).start()
    try:
        verdicts = _ladder(f"http://127.0.0.1:{tunnel.local_port}", model_id, health, headers)
    finally:
        tunnel.close()
    return f"{relay.url} (through serve job {relay.job_id} on node {relay.node})", verdicts


def _ladder(url: str, model_id: str | None, health: Health, headers: dict[str, str] | None) -> list[Verdict]:
    with httpx.Client() as client:
        if model_id is None:  # --url alone: take the model the server lists
            try:
                _, body = fetch(client, "GET", f"{url}/v1/models", health.request_timeout_s, headers=headers)
                model_id = str(json.loads(body)["data"][0]["id"])
            except (httpx.HTTPError, ReplyError, ValueError, KeyError, IndexError, TypeError):
                model_id = ""
        return run_ladder(client, url, model_id, health.prompt, health.expect, health.max_tokens,
                          health.request_timeout_s, health.completion_timeout_s, headers)  # fmt: skip
