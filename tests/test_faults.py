"""Faults injected for real on the local cluster: slurmctld stopped, frozen and restarted; the
node going down (the serve job requeued or not, per the restart policy); Ctrl-C during --wait.
Each test checks what the user sees and that nothing is lost (no job forgotten, none duplicated,
no false state)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    CPU_NODE,
    GLM5_HPC,
    GPU_NODES,
    INSTANCE,
    REPO,
    containers,
    eventually,
    glm5,
    report,
    routed_profile,
    squeue_ids,
    start_load,
    status_json,
)

pytestmark = pytest.mark.usefixtures("cluster")


SLURMCTLD_PID = Path(f"/run/glm5-local/{INSTANCE}/slurmctld.pid")  # this worker's instance's controller, no other cluster's


def node_ready() -> bool:
    states = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True).stdout.split()
    return bool(states) and all(s in ("idle", "mixed", "allocated") for s in states)


def slurmctld_pid() -> int:
    return int(SLURMCTLD_PID.read_text().split()[0])


def slurmctld_gone() -> bool:
    try:
        os.kill(slurmctld_pid(), 0)
    except (OSError, ValueError):
        return True
    return Path(f"/proc/{slurmctld_pid()}/comm").read_text().strip() != "slurmctld"


def stop_slurmctld() -> None:
    os.kill(slurmctld_pid(), signal.SIGTERM)
    assert eventually(slurmctld_gone)


def cluster_up() -> None:
    subprocess.run([str(REPO / "scripts" / "local-cluster"), "--instance", INSTANCE, "up"], check=True, capture_output=True)


@pytest.fixture
def controller() -> Iterator[None]:
    """Whatever a test does to slurmctld or the nodes, they are running and answering again afterwards."""
    yield
    with contextlib.suppress(OSError, ValueError):
        os.kill(slurmctld_pid(), signal.SIGCONT)
    cluster_up()
    for node in (CPU_NODE, *GPU_NODES):
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
    assert eventually(node_ready, timeout_s=60)


def held_deployment(state_dir: Path, name: str) -> list[str]:
    ids = [
        subprocess.run(
            ["sbatch", "--parsable", "--hold", "-p", "cpu", "--mem=10", "--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(3)
    ]
    stages = [{"stage": s, "job_id": j} for s, j in zip(("prep-model", "build-wheel", "serve"), ids, strict=True)]
    run = {
        "run_id": "r",
        "run_dir": str(state_dir),
        "health_file": str(state_dir / "h.json"),
        "logs": "",
        "planned": [s["stage"] for s in stages],
        "stages": stages,
        "submission": "complete",
    }
    (state_dir / "deployments").mkdir(parents=True, exist_ok=True)
    (state_dir / "deployments" / f"{name}.json").write_text(json.dumps({"schema": 1, "name": name, "runs": [run]}))
    return ids


def test_status_waits_out_a_frozen_controller(state_dir: Path, controller: None) -> None:
    ids = held_deployment(state_dir, "frozen")
    try:
        os.kill(slurmctld_pid(), signal.SIGSTOP)
        proc = subprocess.Popen(
            [str(GLM5_HPC), "status", "frozen", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(5)
        assert proc.poll() is None  # still retrying, not reporting anything
        os.kill(slurmctld_pid(), signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        dep = json.loads(out)["deployments"][0]
        assert [s["state"] for s in dep["stages"]] == ["PENDING"] * 3  # the true state, after recovering
    finally:
        subprocess.run(["scancel", *ids])


def test_status_with_the_controller_down_is_an_error_not_a_guess(state_dir: Path, controller: None) -> None:
    ids = held_deployment(state_dir, "down")
    try:
        stop_slurmctld()
        proc = subprocess.run(
            [str(GLM5_HPC), "status", "down", "--json"],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "GLM5_HPC_SLURM_RETRY_S": "5"},
        )
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith("glm5_hpc: error: sacct -X failed") or proc.stderr.startswith(
            "glm5_hpc: error: squeue -h failed"
        )
        cluster_up()
        assert [s["state"] for s in status_json("down")["stages"]] == ["PENDING"] * 3  # state survived the restart
    finally:
        subprocess.run(["scancel", *ids])


def test_submit_with_the_controller_down_submits_nothing(
    make_profile: Callable[..., Path], state_dir: Path, controller: None
) -> None:
    profile = make_profile("noctl")
    stop_slurmctld()
    proc = subprocess.run(
        [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "noctl"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLM5_HPC_SLURM_RETRY_S": "5"},
    )
    assert proc.returncode == 1
    # submit first looks for the deployment's jobs in the queue (adoption by comment): with no
    # controller it stops there, before writing a run or calling sbatch
    assert "glm5_hpc: error: squeue -h failed (rc=1): slurm_load_jobs error: Unable to contact slurm controller" in proc.stderr
    cluster_up()
    assert not (state_dir / "deployments" / "noctl.json").exists()
    live = subprocess.run(["squeue", "-h", "-o", "%k"], capture_output=True, text=True, check=True).stdout.split()
    assert not [c for c in live if c.startswith("glm5_hpc:noctl:")]  # no job was created behind the error

    # sbatch failing in the middle of the chain (here: a partition the cluster does not have)
    bad = make_profile("nopart", stages={"serve": {"partition": "nosuch"}})
    proc = glm5("submit", "--profile", str(bad), "--name", "nopart")
    assert proc.returncode == 1 and "sbatch failed for job glm5-nopart-serve on partition nosuch" in proc.stderr, proc.stderr
    (run,) = json.loads((state_dir / "deployments" / "nopart.json").read_text())["runs"]
    submitted = [s["job_id"] for s in run["stages"] if s["job_id"]]
    assert run["submission"].startswith(f"aborted: sbatch failed, cancelled {sorted(submitted)}") and len(submitted) == 2
    assert not set(submitted) & set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                                                   check=True).stdout.split())  # fmt: skip
    assert glm5("submit", "--profile", str(profile), "--name", "noctl").returncode == 0  # and the next submit works
    glm5("cancel", "noctl")


def test_controller_restart_during_wait(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], controller: None
) -> None:
    profile = make_profile("restartctl", container={"env": {"GLM5_STANDIN_BUILD_S": "20", "GLM5_STANDIN_LOAD_S": "3"}})
    cleanup_deployments.append("restartctl")
    proc = subprocess.Popen(
        [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "restartctl", "--wait", "--timeout", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Restarted while the build runs, its job launched: slurmctld stopped in the very instant it
    # allocates a job can record it RUNNING with no batch script ever started (Slurm's own edge,
    # seen here once), which no client can wait out.
    assert eventually(lambda: any(c.startswith("glm5-restartctl-build-wheel-") for c in containers()), timeout_s=120)
    stop_slurmctld()
    time.sleep(2)
    cluster_up()
    out, err = proc.communicate(timeout=360)
    assert proc.returncode == 0, out + err
    assert "healthy: http://127.0.0.1:" in out


def test_a_requeue_handover_survives_the_controller_being_down_at_the_requeue_point(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], controller: None
) -> None:
    """handover.mode requeue, 28 s before a 1-minute limit: slurmctld is stopped 8 s before that
    point and started again 6 s after it. The serve job keeps asking (backing off) until the
    controller answers, so it is requeued instead of running into its time limit."""
    profile = make_profile("ctldrq", handover={"mode": "requeue", "lead_s": 28}, stages={"serve": {"time": "00:01:00"}},
                           serve={"port": "auto"})  # fmt: skip
    cleanup_deployments.append("ctldrq")
    glm5("submit", "--profile", str(profile), "--name", "ctldrq", "--wait", "--timeout", "240", check=True)
    job = status_json("ctldrq")["stages"][2]["job_id"]
    end = time.mktime(time.strptime(subprocess.run(["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True,
                                                   check=True).stdout.strip(), "%Y-%m-%dT%H:%M:%S"))  # fmt: skip
    requeue_at = end - 28
    time.sleep(max(0.0, requeue_at - 8 - time.time()))
    stop_slurmctld()
    time.sleep(max(0.0, requeue_at + 6 - time.time()))
    cluster_up()

    def history() -> list[str]:
        out = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", job], capture_output=True, text=True)
        return out.stdout.split()

    assert eventually(lambda: "REQUEUED" in history(), timeout_s=90, interval_s=1), history()
    assert eventually(lambda: status_json("ctldrq")["healthy"], timeout_s=120, interval_s=1)
    dep = status_json("ctldrq")
    assert dep["stages"][2]["job_id"] == job and dep["requeues"] >= 1 and "TIMEOUT" not in history()
    log = (Path(dep["logs"]) / f"{job}_0_log.out").read_text()
    assert "requeueing job" in log


def test_ctrl_c_during_wait_keeps_the_jobs(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    profile = make_profile("ctrlc")
    cleanup_deployments.append("ctrlc")
    proc = subprocess.Popen(
        [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "ctrlc", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a runner started in the background without job control ignores
        # SIGINT, and its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = proc.stdout.readline()  # type: ignore[union-attr]
    assert first.startswith("submitted deployment ctrlc run ")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted (jobs submitted before it are recorded and keep running" in err
    record = json.loads((state_dir / "deployments" / "ctrlc.json").read_text())
    assert record["runs"][0]["submission"] == "complete" and len(record["runs"][0]["stages"]) == 3
    assert eventually(lambda: status_json("ctrlc")["healthy"], timeout_s=180)  # a later status picks up


def test_node_failure_under_load_moves_the_server_to_the_other_gpu_node(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], controller: None
) -> None:
    """The serving GPU node fails under client load. With health.restart: restart the serve job was
    submitted --requeue: Slurm starts the same job again on the other GPU node, it claims the route,
    and the traffic resumes through the same stable endpoint (the gap is reported). With
    restart: none (--no-requeue) a serve job on a failing node ends NODE_FAIL, shown as the failure."""
    profile = routed_profile(make_profile, "nfrestart", health={"restart": "restart", "max_restarts": 2})
    cleanup_deployments.append("nfrestart")
    glm5("submit", "--profile", str(profile), "--name", "nfrestart", "--wait", "--timeout", "240", check=True)
    first = status_json("nfrestart")
    serve_id, failed_node = first["stages"][2]["job_id"], first["stages"][2]["node"]
    assert failed_node in GPU_NODES and first["router_node"] == CPU_NODE  # the router reaches across nodes
    show = subprocess.run(["scontrol", "show", "job", serve_id], capture_output=True, text=True, check=True).stdout
    assert "Requeue=1" in show
    client = start_load("nfrestart")
    subprocess.run(["scontrol", "update", f"nodename={failed_node}", "state=down", "reason=glm5-fault-test"], check=True)
    down_at = time.monotonic()
    assert eventually(lambda: not status_json("nfrestart")["healthy"], timeout_s=30)  # never healthy on a failed node
    assert eventually(lambda: status_json("nfrestart")["healthy"], timeout_s=180, interval_s=1)
    assert eventually(lambda: any(o.ok and o.sent > down_at for o in client.outcomes), timeout_s=30)
    summary = client.finish()
    report("node failure (requeued onto the other GPU node)", summary)
    back = status_json("nfrestart")
    assert back["stages"][2]["job_id"] == serve_id and back["requeues"] == 1  # the same job, started again ...
    assert back["stages"][2]["node"] not in (failed_node, "")  # ... on the other GPU node ...
    assert back["route_job"] == serve_id and back["stable_endpoint"] == first["stable_endpoint"]  # ... behind the same URL
    assert back["endpoint"] != first["endpoint"]  # its endpoint found anew on that node
    assert summary["failed"] <= 1, summary  # at most the one request the failed node held (the client sends one at a time)

    # restart: none. The deployment lands on the failed node once it is back (the other one is busy).
    subprocess.run(["scontrol", "update", f"nodename={failed_node}", "state=resume"], check=True)
    none = make_profile("nfnone", health={"restart": "none"}, serve={"port": "auto"})
    cleanup_deployments.append("nfnone")
    glm5("submit", "--profile", str(none), "--name", "nfnone", "--wait", "--timeout", "240", check=True)
    assert status_json("nfnone")["stages"][2]["node"] == failed_node
    subprocess.run(["scontrol", "update", f"nodename={failed_node}", "state=down", "reason=glm5-fault-test"], check=True)
    assert eventually(lambda: status_json("nfnone")["stages"][2]["state"] == "NODE_FAIL", timeout_s=120)
    dead = status_json("nfnone")
    assert not dead["healthy"] and "ended NODE_FAIL" in dead["failure"] and dead["stages"][2]["job_id"] not in squeue_ids()
    assert eventually(lambda: not any(c.startswith("glm5-nfnone-serve-") for c in containers()), timeout_s=60)
