"""Replicas (serve.replicas) on the multi-node local cluster, under continuous client load through
the router: two 8-GPU replicas serve from the two GPU nodes; one node fails and only a request it
held may fail; the replica comes back when the node does; scale 2 -> 1 -> 2 with no failed request;
a rolling redeploy with no node free for an extra replica, with no failed request."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    GLM5_HPC,
    GPU_NODES,
    MODEL,
    REPO,
    comment_jobs,
    eventually,
    glm5,
    report,
    routed_profile,
    squeue_ids,
    status_json,
)

pytestmark = pytest.mark.usefixtures("cluster")
CLIENTS = 3  # load clients, each with one request in flight


@pytest.fixture
def nodes_back() -> Iterator[None]:
    yield
    for node in GPU_NODES:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)


def start_clients(url: str) -> list[Any]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from load_client import LoadClient

    clients = [LoadClient(url, MODEL) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    return clients


def finish(what: str, clients: list[Any]) -> list[dict[str, Any]]:
    summaries = [c.finish() for c in clients]
    for s in summaries:
        report(what, s)
    return summaries


def replicas(name: str) -> list[dict[str, Any]]:
    return list(status_json(name)["replicas"])


def test_two_replicas_node_failure_and_scale(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], nodes_back: None
) -> None:
    profile = routed_profile(make_profile, "reps", serve={"replicas": 2}, health={"restart": "restart", "max_restarts": 2})
    cleanup_deployments.append("reps")
    proc = glm5("submit", "--profile", str(profile), "--name", "reps", "--wait", "--timeout", "300", timeout=360)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replica 1: RUNNING job " in proc.stdout
    first = status_json("reps")
    r0, r1 = first["replicas"]
    assert first["healthy"] and r0["healthy"] and r1["healthy"] and {r0["node"], r1["node"]} == set(GPU_NODES)
    assert r0["job_id"] == first["stages"][2]["job_id"] and r1["job_id"] != r0["job_id"]
    clients = start_clients(first["stable_endpoint"])
    assert eventually(lambda: all(r["served"] for r in replicas("reps")), timeout_s=30)  # the router uses both
    text = glm5("status", "reps", check=True).stdout
    assert f"replica 1: job {r1['job_id']} RUNNING on {r1['node']}, healthy at " in text and " served" in text
    assert "  traffic:  " in text and " requests through the router)" in text  # the last minute, from the router
    assert status_json("reps")["traffic"]["requests"] > 0

    # Replica 1's node fails: its job is requeued (restart policy) and waits for a node; replica 0 serves.
    subprocess.run(["scontrol", "update", f"nodename={r1['node']}", "state=down", "reason=glm5-replica-test"], check=True)
    down_at = time.monotonic()
    assert eventually(lambda: not replicas("reps")[1]["healthy"], timeout_s=30)
    assert eventually(lambda: all(any(o.ok and o.sent > down_at + 2 for o in c.outcomes) for c in clients), timeout_s=30)
    failed = finish("one replica's node failed", clients)
    assert all(s["failed"] <= 1 for s in failed), failed  # at most the one request each client had on that node
    during = status_json("reps")
    assert not during["healthy"] and during["replicas"][0]["healthy"] and "failure" in during
    subprocess.run(["scontrol", "update", f"nodename={r1['node']}", "state=resume"], check=True)
    assert eventually(lambda: status_json("reps")["healthy"], timeout_s=240, interval_s=2)
    back = replicas("reps")[1]
    assert back["job_id"] == r1["job_id"] and back["healthy"]  # the same job, requeued

    # scale 2 -> 1 -> 2 under load: no request fails.
    clients = start_clients(first["stable_endpoint"])
    down = glm5("scale", "reps", "--replicas", "1", "--json", check=True)
    assert r1["job_id"] in down.stdout and r1["job_id"] not in squeue_ids()
    assert [r["replica"] for r in replicas("reps")] == [0]
    up = glm5("scale", "reps", "--replicas", "2", check=True)
    assert "replica 2: serve job " in up.stdout
    assert eventually(lambda: status_json("reps")["healthy"] and len(replicas("reps")) == 2, timeout_s=240, interval_s=2)
    assert eventually(lambda: all(r["served"] for r in replicas("reps")), timeout_s=30)
    scaled = finish("scale 2 -> 1 -> 2", clients)
    assert all(s["failed"] == 0 for s in scaled), scaled
    new = replicas("reps")[1]
    assert new["replica"] == 2

    # A rolling redeploy with no node free for an extra replica: an old one makes room each time.
    clients = start_clients(first["stable_endpoint"])
    before = status_json("reps")
    proc = glm5("redeploy", "reps", "--no-downtime", "--timeout", "240", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(Resources): replica 0 of run " in proc.stdout and "(Resources): replica 2 of run " in proc.stdout
    rolled = finish("rolling redeploy of 2 replicas with no free node", clients)
    assert all(s["failed"] == 0 for s in rolled), rolled
    after = status_json("reps")
    assert after["healthy"] and after["run_id"] != before["run_id"] and [r["replica"] for r in after["replicas"]] == [0, 1]
    old_jobs = {r["job_id"] for r in before["replicas"]}
    assert not old_jobs & squeue_ids() and not old_jobs & {r["job_id"] for r in after["replicas"]}
    glm5("cancel", "reps", check=True)
    assert eventually(lambda: not comment_jobs("reps"), timeout_s=60)
    assert not {r["job_id"] for r in after["replicas"]} & squeue_ids()


def test_rolling_redeploy_of_two_replicas_and_its_rollback(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """4-GPU, 1 GB replicas, so one extra fits beside them: a no-downtime redeploy replaces replica 0,
    then replica 1, under load, with no failed request. A second one whose replica 1 fails after
    replica 0 took over rolls back: the old run's retired slot gets a fresh serve job."""
    four_gpus = {"serve": {"gpus": 4, "mem": "1G"}}
    profile = routed_profile(make_profile, "roll", serve={"replicas": 2, "tp_size": 4}, stages=four_gpus)
    cleanup_deployments.append("roll")
    glm5("submit", "--profile", str(profile), "--name", "roll", "--wait", "--timeout", "300", check=True, timeout=360)
    before = status_json("roll")
    clients = start_clients(before["stable_endpoint"])
    proc = glm5("redeploy", "roll", "--no-downtime", "--timeout", "240", timeout=600)
    assert proc.returncode == 0 and "one at a time" in proc.stdout, proc.stdout + proc.stderr
    after = status_json("roll")
    assert after["healthy"] and after["run_id"] != before["run_id"] and len(after["replicas"]) == 2
    old_jobs = [r["job_id"] for r in before["replicas"]]
    assert not {r["job_id"] for r in after["replicas"]} & set(old_jobs)
    assert [sacct_state(j) for j in old_jobs] == ["COMPLETED", "COMPLETED"]  # each retired after its slot moved

    record = state_dir / "deployments" / "roll.json"
    proc2 = subprocess.Popen([str(GLM5_HPC), "redeploy", "roll", "--no-downtime", "--timeout", "240"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")  # fmt: skip

    def second_replica() -> str:
        runs = json.loads(record.read_text())["runs"]
        return str(runs[-1].get("replicas", [{}])[0].get("job_id") or "") if runs[-1]["run_id"] != after["run_id"] else ""

    assert eventually(lambda: bool(second_replica()), timeout_s=240, interval_s=0.5)  # replica 0 of the new run took over
    subprocess.run(["scancel", second_replica()], check=True)  # the new run's replica 1 fails
    out, err = proc2.communicate(timeout=400)
    assert proc2.returncode == 1 and "keeps serving; its retired replicas were resubmitted" in err, out + err
    back = status_json("roll")
    assert back["healthy"] and back["run_id"] == after["run_id"], (back, err)
    assert back["replicas"][0]["job_id"] != after["replicas"][0]["job_id"]  # a fresh job of the old run in slot 0
    assert back["replicas"][1]["job_id"] == after["replicas"][1]["job_id"]  # slot 1 never stopped
    summaries = finish("rolling redeploy of 2 replicas, then one rolled back", clients)
    assert all(s["failed"] == 0 for s in summaries), summaries
    glm5("cancel", "roll", check=True)
    assert eventually(lambda: not comment_jobs("roll"), timeout_s=60)


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "State", "-j", job_id], capture_output=True, text=True).stdout
    return out.split()[0] if out.split() else ""


def test_the_nginx_engine_serves_two_replicas_and_ends_with_its_job(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    """router.engine nginx: nginx in the router job on the CPU node spreads the requests over both
    replicas (each serve log shows them), and cancel leaves no nginx behind."""
    profile = routed_profile(make_profile, "ngx", serve={"replicas": 2}, router={"engine": "nginx"})
    cleanup_deployments.append("ngx")
    glm5("submit", "--profile", str(profile), "--name", "ngx", "--wait", "--timeout", "300", check=True, timeout=360)
    dep = status_json("ngx")
    clients = start_clients(dep["stable_endpoint"])
    time.sleep(5)
    summaries = finish("nginx engine, 2 replicas", clients)
    assert all(s["failed"] == 0 and int(s["requests"]) > 10 for s in summaries), summaries
    for r in dep["replicas"]:
        log = Path(dep["logs"]) / f"{r['job_id']}_0_log.out"
        assert log.read_text().count('"POST /v1/completions HTTP/1.1" 200') > 5, r  # both replicas got traffic
    assert [r["served"] for r in dep["replicas"]] == [None, None]  # counts are the python engine's only
    conf = f"{Path(dep['logs']).parents[2]}/router/nginx-{dep['router_job']}/nginx.conf"
    assert subprocess.run(["pgrep", "-f", conf], capture_output=True).returncode == 0  # nginx runs in the router job
    glm5("cancel", "ngx", check=True)
    assert eventually(lambda: not comment_jobs("ngx"), timeout_s=60)
    assert eventually(lambda: subprocess.run(["pgrep", "-f", conf], capture_output=True).returncode == 1, timeout_s=30)
