"""The watcher against every failure mode of the stand-in, on the real cluster, and the verdict
`glm5_hpc status` prints for each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import containers, eventually, glm5, status_json

pytestmark = pytest.mark.usefixtures("cluster")
FAST = {"poll_interval_s": 0.25, "liveness_interval_s": 1, "liveness_failures": 2, "request_timeout_s": 1}


def start(make_profile: Callable[..., Path], cleanup: list[str], name: str, fault: str = "", health: dict | None = None,
          **overrides: object) -> Path:  # fmt: skip
    env = {"GLM5_STANDIN_FAULT": fault} if fault else {}
    container = {"env": {"GLM5_STANDIN_BUILD_S": "1", "GLM5_STANDIN_LOAD_S": "2", "GLM5_STANDIN_WARMUP_STEP_S": "0.01", **env}}
    container.update(overrides.pop("container", {}))  # type: ignore[arg-type]
    profile = make_profile(name, container=container, health={**FAST, **(health or {})}, **overrides)
    cleanup.append(name)
    glm5("submit", "--profile", str(profile), "--name", name, check=True)
    return profile


def wait_phase(name: str, phases: tuple[str, ...], timeout_s: float = 120) -> dict:
    assert eventually(lambda: status_json(name)["phase"] in phases, timeout_s=timeout_s), status_json(name)
    return status_json(name)


def test_healthy_and_probe(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "ok")
    dep = wait_phase("ok", ("ready",))
    assert dep["healthy"] and dep["last_probe"]["ok"] and dep["restarts"] == 0
    human = glm5("status", "ok", check=True).stdout
    assert "health:   healthy: Paris." in human and "probe:    ok at " in human
    proc = glm5("probe", "ok")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    serve = dep["stages"][2]
    assert lines[0] == f"probing {dep['endpoint']} (through serve job {serve['job_id']} on node {serve['node']})"
    assert [ln.split()[:2] for ln in lines[1:]] == [["health", "ok"], ["models", "ok"], ["completion", "ok"]]
    # --url probes from where the command runs: the serve node's loopback is not this machine's
    by_url = glm5("probe", "--url", dep["endpoint"])
    assert by_url.returncode == 1 and "health     FAILED" in by_url.stdout, by_url.stdout


def test_gibberish_probe_fails_on_the_completion_rung(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "gibber", model={"edits": {"architecture": False}})
    dep = wait_phase("gibber", ("unhealthy",))
    assert dep["health_reason"].startswith("gibberish (distinct bigrams")
    proc = glm5("probe", "gibber")
    assert proc.returncode == 1
    assert "completion FAILED gibberish" in proc.stdout and "health     ok" in proc.stdout


def test_crash_after_ready_without_restart(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "crash", fault="crash_after_ready:3")
    wait_phase("crash", ("ready",))
    assert eventually(lambda: status_json("crash")["stages"][2]["state"] == "FAILED", timeout_s=60)
    dep = status_json("crash")
    assert dep["phase"] == "ended" and dep["health_reason"] == "server exited with code 134"
    # Slurm shows the job's exit status 134 (128 + SIGABRT) as "6:0"; the server's own code is in the log tail
    assert dep["failure"].startswith(f"stage serve (job {dep['stages'][2]['job_id']}) ended FAILED, exit code ")
    assert "serve.sh exited with code 134" in dep["failure"]
    assert "health:   ended: server exited with code 134" in glm5("status", "crash", check=True).stdout


def test_crash_after_ready_restarted_then_gives_up(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "restart", fault="crash_after_ready:3",
          health={"restart": "restart", "max_restarts": 1, "restart_backoff_s": 1})  # fmt: skip
    assert eventually(lambda: status_json("restart")["restarts"] == 1, timeout_s=90)
    assert eventually(lambda: status_json("restart")["stages"][2]["state"] == "FAILED", timeout_s=90)
    dep = status_json("restart")
    assert dep["health_reason"] == "server exited with code 134 (1 restart(s) used)"
    phases = [h["phase"] for h in dep["health_history"]]
    assert "restarting" in phases and phases.count("ready") == 2, phases  # ready, crash, restart, ready again
    assert not any(c.startswith("glm5-restart-") for c in containers())


def test_hang_after_ready_marks_unhealthy(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "hang", fault="hang_after_ready:2")
    wait_phase("hang", ("ready",))
    dep = wait_phase("hang", ("unhealthy",), timeout_s=60)
    assert dep["health_reason"] == "2 liveness probes failed: GET /health: ReadTimeout: reply not complete within 1s"
    assert dep["stages"][2]["state"] == "RUNNING"  # restart policy none: left for the user to inspect
    human = glm5("status", "hang", check=True).stdout
    assert "health:   unhealthy: 2 liveness probes failed" in human and "probe:    FAILED at " in human


def test_warmup_longer_than_deadline_ends_the_job(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "slow", health={"ready_timeout_s": 6},
          container={"env": {"GLM5_STANDIN_BUILD_S": "1", "GLM5_STANDIN_LOAD_S": "120"}})  # fmt: skip
    assert eventually(lambda: status_json("slow")["stages"][2]["state"] == "FAILED", timeout_s=120)
    dep = status_json("slow")
    assert dep["health_reason"].startswith("not ready within ready_timeout_s=6 (last probe: GET /health: ConnectError")
    assert not any(c.startswith("glm5-slow-") for c in containers())  # GPUs are not held by a server that never came up
    assert "health:   ended: not ready within ready_timeout_s=6" in glm5("status", "slow", check=True).stdout


def test_health_503_never_ready(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "h503", fault="health_503", health={"ready_timeout_s": 8})
    assert eventually(lambda: status_json("h503")["stages"][2]["state"] == "FAILED", timeout_s=120)
    dep = status_json("h503")
    assert dep["health_reason"] == "not ready within ready_timeout_s=8 (last probe: GET /health -> 503)"


def test_bridge_network_published_on_the_node(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    start(make_profile, cleanup_deployments, "bridge", container={"network": "bridge", "publish": True},
          serve={"host": "0.0.0.0", "port": "auto"})  # fmt: skip
    dep = wait_phase("bridge", ("ready",))
    assert dep["endpoint"].startswith("http://10.77.0.")  # the node's address (NodeAddr) and the published port
    assert dep["endpoint_kind"].startswith("published on node ")
    assert glm5("probe", "bridge").returncode == 0
