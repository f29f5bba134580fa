"""Secrets and exposure on the real cluster: a planted secret reaches the server and appears in
no script, argv, log, pickle or record; the API-key gateway guards the endpoint and refuses
trtllm-serve's control routes."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from glm5_hpc.adapters.store import Store
from glm5_hpc.errors import StateError
from tests.conftest import comment_jobs, eventually, glm5

pytestmark = pytest.mark.usefixtures("cluster")


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_secrets_reach_the_server_and_nowhere_else(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], tmp_path: Path, state_dir: Path
) -> None:
    hf_token, api_key = f"hf_{secrets.token_hex(16)}", f"key_{secrets.token_hex(16)}"
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    (vault / "hf_token").write_text(hf_token + "\n")
    (vault / "api_key").write_text(api_key + "\n")
    profile = make_profile(
        "secret",
        container={"secrets": {"HF_TOKEN": {"file": str(vault / "hf_token")}}},
        gateway={"enabled": True, "api_key": {"file": str(vault / "api_key")}},  # on the node's address: reachable from here
        serve={"port": "auto"},
    )
    cleanup_deployments.append("secret")
    proc = glm5("submit", "--profile", str(profile), "--name", "secret", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (dep,) = json.loads(glm5("status", "secret", "--json", check=True).stdout)["deployments"]
    assert dep["endpoint_kind"].startswith("API-key gateway on node ")
    url = dep["endpoint"]

    # the gateway: health open for monitoring; everything else needs the key; control routes refused
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(f"{url}/v1/models", headers=auth, timeout=10).json()["data"][0]["id"] == "GLM-5-nvfp4-v1"
    reply = httpx.post(
        f"{url}/v1/completions", headers=auth, json={"prompt": "The capital of France is", "max_tokens": 10}, timeout=10
    )
    assert "Paris" in reply.json()["choices"][0]["text"]
    for route in ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events"):
        assert httpx.post(f"{url}{route}", headers=auth, json={}, timeout=10).status_code == 403
    assert glm5("probe", "secret").returncode == 0  # the CLI reads the key from the profile's file
    serve_log = Path(dep["logs"]) / f"{dep['stages'][2]['job_id']}_0_log.out"
    assert "control route called" not in serve_log.read_text()  # none reached the server ...
    internal = re.search(r"API-key gateway on \S+ -> (127\.0\.0\.1:\d+)", serve_log.read_text())
    assert internal is not None
    server_pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", f"glm5-secret-serve-{dep['stages'][2]['job_id']}"],
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    direct = subprocess.run(["nsenter", "-t", server_pid, "-n", "curl", "-s", "-X", "POST", f"http://{internal[1]}/release_memory"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "recorded by the stand-in" in direct.stdout, direct  # ... which records the calls that do (on its node)
    assert eventually(lambda: "control route called: POST /release_memory" in serve_log.read_text(), timeout_s=10)

    # the secret reached the server (the stand-in reports its length, never its value) ...
    assert f"HF_TOKEN: set ({len(hf_token)} characters)" in serve_log.read_text()
    # ... and appears in no script, log, pickle, record or command line
    work = profile.parent / "work"
    searched = files_under(work, state_dir)
    assert len(searched) > 10
    for path in searched:
        data = path.read_bytes()
        assert hf_token.encode() not in data and api_key.encode() not in data, path
    cmdlines = subprocess.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"], capture_output=True).stdout
    assert hf_token.encode() not in cmdlines and api_key.encode() not in cmdlines


def test_gateway_needs_a_key_and_host_networking(make_profile: Callable[..., Path]) -> None:
    no_key = make_profile("nokey", gateway={"enabled": True})
    proc = glm5("submit", "--profile", str(no_key))
    assert proc.returncode == 2 and "gateway.enabled needs gateway.api_key" in proc.stderr
    bridge = make_profile(
        "gwbridge", gateway={"enabled": True, "api_key": {"env": "X"}}, container={"network": "bridge"}, serve={"host": "0.0.0.0"}
    )
    proc = glm5("submit", "--profile", str(bridge))
    assert proc.returncode == 2 and "gateway.enabled needs container.network host" in proc.stderr


def test_default_bind_is_loopback_on_host_networking(make_profile: Callable[..., Path]) -> None:
    import yaml

    profile = make_profile("bind")
    doc = yaml.safe_load(profile.read_text())
    del doc["serve"]["host"]
    profile.write_text(yaml.safe_dump(doc))
    shown = yaml.safe_load(glm5("profile", "show", str(profile), check=True).stdout.split("\n", 1)[1])
    assert shown["serve"]["host"] == "127.0.0.1"


def test_a_state_directory_others_can_write_is_refused_never_chmod_ed(tmp_path: Path) -> None:
    """GLM5_HPC_STATE_DIR pointed at a shared directory: refused with its name, and left as it was
    (chmod-ing it would lock its other users out); an existing directory only others can read is used as is."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    refused = pytest.raises(StateError, match=f"state directory {shared} is writable by others .*GLM5_HPC_STATE_DIR")
    with refused, Store(shared).locked("x"):
        pass
    assert shared.stat().st_mode & 0o7777 == 0o1777 and not any(shared.iterdir())
    readable = tmp_path / "readable"
    readable.mkdir()
    readable.chmod(0o755)
    with Store(readable).locked("x"):
        pass
    assert readable.stat().st_mode & 0o777 == 0o755
    assert (readable / "deployments").stat().st_mode & 0o777 == 0o700  # created here: private


def test_an_env_secret_missing_at_submit_is_refused_before_anything_runs(
    make_profile: Callable[..., Path], state_dir: Path
) -> None:
    """Found here, at once, and not on the serve node after the queue."""
    profile = make_profile("nosecret", container={"secrets": {"HF_TOKEN": {"env": "GLM5_TEST_UNSET_TOKEN"}}})
    proc = glm5("submit", "--profile", str(profile), "--name", "nosecret")
    assert proc.returncode == 2, proc.stderr
    assert "secret container.secrets.HF_TOKEN: environment variable GLM5_TEST_UNSET_TOKEN is not set" in proc.stderr
    assert not (state_dir / "deployments" / "nosecret.json").exists() and not comment_jobs("nosecret")
