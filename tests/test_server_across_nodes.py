"""One server across nodes (stages.serve.nodes) on the multi-node local cluster: the stand-in runs
as two MPI ranks, one per GPU node, started by srun --mpi=pmix, each in its own container; rank 0
serves HTTP once both have joined. Losing a rank ends the server and the restart policy starts it
again in the same allocation; losing a node ends the job and Slurm requeues it. A server that
makes no progress while loading is judged hung and handled by the same policy."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GPU_NODES, PREFIX, comment_jobs, containers, eventually, glm5, status_json

pytestmark = pytest.mark.usefixtures("cluster")
TWO_NODES = {"stages": {"serve": {"nodes": 2, "gpus": 1, "mem": "1G"}}, "serve": {"tp_size": 2}}


@pytest.fixture
def nodes_back() -> Iterator[None]:
    yield
    for node in GPU_NODES:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)


def test_a_two_node_server_serves_and_survives_a_lost_rank_and_a_lost_node(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], nodes_back: None
) -> None:
    profile = make_profile("across", **TWO_NODES, health={"restart": "restart", "max_restarts": 2, "restart_backoff_s": 1})
    cleanup_deployments.append("across")
    proc = glm5("submit", "--profile", str(profile), "--name", "across", "--wait", "--timeout", "300", timeout=360)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = status_json("across")
    serve = st["stages"][-1]
    job = serve["job_id"]
    assert st["healthy"] and serve["node"] == f"{PREFIX}gpu[1-2]", st
    run_dir = Path(st["logs"]).parent
    ranks = {p.name: p.read_text().strip() for p in (run_dir / "ranks" / job).iterdir()}
    assert ranks == {"0": GPU_NODES[0], "1": GPU_NODES[1]}, ranks  # each rank's container started on its own node
    assert {f"glm5-across-serve-{job}", f"glm5-across-serve-r1-{job}"} <= containers()
    log = (Path(st["logs"]) / f"{job}_0_log.out").read_text()
    assert "all 2 ranks joined" in log and f"rank 1 of 2 joined on node {GPU_NODES[1]}" in log

    # Rank 1's container dies: srun ends every rank, the server exits, the restart policy starts it again.
    subprocess.run(["podman", "kill", f"glm5-across-serve-r1-{job}"], check=True, capture_output=True)
    assert eventually(lambda: not status_json("across")["healthy"], timeout_s=30)
    assert eventually(lambda: status_json("across")["healthy"], timeout_s=120, interval_s=1)
    again = status_json("across")
    assert again["stages"][-1]["job_id"] == job and "restarts: 1" in glm5("status", "across", check=True).stdout

    # Either node fails (rank 1's, then rank 0's, where the batch script and the watcher run): the job
    # ends NODE_FAIL and is requeued; it serves again once the node is back.
    for lost, requeues in ((GPU_NODES[1], 1), (GPU_NODES[0], 2)):
        subprocess.run(["scontrol", "update", f"nodename={lost}", "state=down", "reason=glm5-across-test"], check=True)
        assert eventually(lambda: not status_json("across")["healthy"], timeout_s=30)
        subprocess.run(["scontrol", "update", f"nodename={lost}", "state=resume"], check=True)
        assert eventually(lambda: status_json("across")["healthy"], timeout_s=240, interval_s=2)
        text = glm5("status", "across", check=True).stdout
        assert status_json("across")["stages"][-1]["job_id"] == job and f"requeues: {requeues}" in text, text

    glm5("cancel", "across", check=True)
    assert eventually(lambda: not comment_jobs("across"), timeout_s=60)
    assert eventually(lambda: not {c for c in containers() if c.startswith("glm5-across-")}, timeout_s=60)


def test_a_server_that_stops_making_progress_is_judged_hung(
    make_profile: Callable[..., Path], cleanup_deployments: list[str]
) -> None:
    profile = make_profile(
        "stuck", **TWO_NODES, container={"env": {"GLM5_STANDIN_FAULT": "load_hang"}}, health={"hang_after_s": 5}
    )
    cleanup_deployments.append("stuck")
    proc = glm5("submit", "--profile", str(profile), "--name", "stuck", "--wait", "--timeout", "240", timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "no progress for 5s (health.hang_after_s 5): no new log line and no answer on /health" in out, out
    assert eventually(lambda: not comment_jobs("stuck"), timeout_s=60)
