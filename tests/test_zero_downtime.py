"""Serving through a time limit and a redeploy without downtime, on the local cluster, while a
client sends completions back to back through the deployment's router (benchmarks/load_client.py).
Each test checks the client saw no failed request, that the traffic moved to the new serve job
and that the old one ended by itself (COMPLETED, not TIMEOUT or CANCELLED)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    GLM5_HPC,
    comment_jobs,
    dies_after_sbatch,
    eventually,
    glm5,
    report,
    routed_profile,
    squeue_ids,
    start_load,
    status_json,
)

pytestmark = pytest.mark.usefixtures("cluster")


def job_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True).stdout
    return out.split()[0] if out.split() else ""


def test_handover_before_the_time_limit(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """A 1-minute serve job queues its successor to begin 28 s before its limit; the successor
    becomes healthy, takes the traffic, and the old job retires before its limit."""
    profile = routed_profile(make_profile, "handover", handover={"mode": "overlap", "lead_s": 28},
                             stages={"serve": {"time": "00:01:00"}})  # fmt: skip
    cleanup_deployments.append("handover")
    glm5("submit", "--profile", str(profile), "--name", "handover", "--wait", "--timeout", "240", check=True)
    first = status_json("handover")
    old = first["route_job"]
    assert old == first["stages"][2]["job_id"]
    assert eventually(lambda: status_json("handover")["next_serve"].startswith("job "), timeout_s=30)  # successor queued
    client = start_load("handover")
    assert eventually(lambda: job_state(old) == "COMPLETED", timeout_s=150, interval_s=2)
    summary = client.finish()
    report("handover", summary)
    after = status_json("handover")
    assert summary["failed"] == 0, summary
    assert after["healthy"] and after["route_job"] != old and after["handovers"] >= 1
    assert after["stages"][2]["job_id"] == after["route_job"]
    assert after["stages"][2]["node"] != first["stages"][2]["node"]  # an 8-GPU successor lands on the other GPU node
    assert after["stable_endpoint"] == first["stable_endpoint"]  # clients never changed URL
    record = json.loads((state_dir / "deployments" / "handover.json").read_text())
    assert after["route_job"] in {h["job_id"] for h in record["runs"][-1]["handovers"]}  # the record knows the successor
    glm5("cancel", "handover", check=True)  # the successor's own queued successor included
    assert eventually(lambda: not comment_jobs("handover"), timeout_s=60)


def test_redeploy_without_downtime(make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path) -> None:
    profile = routed_profile(make_profile, "bluegreen")
    cleanup_deployments.append("bluegreen")
    glm5("submit", "--profile", str(profile), "--name", "bluegreen", "--wait", "--timeout", "240", check=True)
    before = status_json("bluegreen")
    client = start_load("bluegreen")
    proc = glm5("redeploy", "bluegreen", "--no-downtime", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = status_json("bluegreen")
    assert after["healthy"] and after["route_job"] != before["route_job"] and after["run_id"] != before["run_id"]
    assert job_state(before["route_job"]) == "COMPLETED"  # retired after draining, not killed
    assert after["stages"][2]["node"] != before["stages"][2]["node"]  # the 8-GPU replacement ran on the other GPU node
    assert not set(j["job_id"] for j in before["stages"] if j["job_id"]) & squeue_ids()

    # A new run that never gets healthy does not replace the healthy one.
    broken = routed_profile(make_profile, "bluegreen-broken", container={"env": {"GLM5_STANDIN_FAULT": "hang"}},
                            health={"ready_timeout_s": 20})  # fmt: skip
    proc = glm5("redeploy", "bluegreen", "--no-downtime", "--profile", str(broken), "--timeout", "120")
    assert proc.returncode == 1 and "keeps serving" in proc.stderr, proc.stdout + proc.stderr
    summary = client.finish()
    report("redeploy --no-downtime (and a failed one)", summary)
    assert summary["failed"] == 0, summary
    kept = status_json("bluegreen")
    assert kept["healthy"] and kept["run_id"] == after["run_id"] and kept["route_job"] == after["route_job"]
    record = json.loads((state_dir / "deployments" / "bluegreen.json").read_text())
    (failed,) = record["failed_replacements"]  # its job ids are kept, and none is left running
    assert failed["stages"] and not {s["job_id"] for s in failed["stages"] if s["job_id"]} & squeue_ids()
    assert set(comment_jobs("bluegreen")) == {after["route_job"], after["router_job"]}  # the router: glm5_hpc:NAME:router


def test_requeue_before_the_time_limit_where_jobs_may_not_overlap(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    """handover.mode requeue: 20 s before its 1-minute limit the serve job asks Slurm to requeue it,
    so it never ends TIMEOUT; the same job starts again after Slurm's requeue delay and serves."""
    profile = make_profile("atlimit", handover={"mode": "requeue", "lead_s": 20}, stages={"serve": {"time": "00:01:00"}},
                           serve={"port": "auto"})  # fmt: skip
    cleanup_deployments.append("atlimit")
    glm5("submit", "--profile", str(profile), "--name", "atlimit", "--wait", "--timeout", "240", check=True)
    serve_id = status_json("atlimit")["stages"][2]["job_id"]

    def history() -> list[str]:
        out = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", serve_id], capture_output=True, text=True)
        return out.stdout.split()

    assert eventually(lambda: "REQUEUED" in history(), timeout_s=90, interval_s=1)
    assert eventually(lambda: status_json("atlimit")["healthy"], timeout_s=120, interval_s=1)
    dep = status_json("atlimit")
    assert dep["stages"][2]["job_id"] == serve_id and dep["requeues"] >= 1  # the same job, started again
    assert "TIMEOUT" not in history()


def test_router_whose_id_was_never_recorded_is_adopted(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    profile = routed_profile(make_profile, "lostrouter")
    cleanup_deployments.append("lostrouter")
    cmd = [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "lostrouter"]
    died = subprocess.run(cmd, env=dies_after_sbatch("router"), capture_output=True, text=True)
    assert died.returncode == 137
    record_file = state_dir / "deployments" / "lostrouter.json"
    assert json.loads(record_file.read_text())["router"]["job_id"] is None  # intent recorded, id lost
    (router_job,) = comment_jobs("lostrouter")  # sbatch created it: glm5_hpc:NAME:router
    assert status_json("lostrouter")["router_job"] == router_job  # status finds it by its comment
    router = json.loads(record_file.read_text())["router"]
    assert router["job_id"] == router_job and router["adopted"] is True
    # the next submit keeps it rather than starting a second router on the same port
    glm5("submit", "--profile", str(profile), "--name", "lostrouter", "--wait", "--timeout", "240", check=True)
    dep = status_json("lostrouter")
    assert dep["healthy"] and dep["router_job"] == router_job and dep["stable_endpoint"]
    assert set(comment_jobs("lostrouter")) == {router_job, dep["route_job"]}
    cancel = glm5("cancel", "lostrouter", check=True)
    assert router_job in cancel.stdout
    assert eventually(lambda: not comment_jobs("lostrouter"), timeout_s=60)
