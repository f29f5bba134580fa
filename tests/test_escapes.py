"""Nothing escapes: every job and container a deployment started stays within reach of cancel,
whatever kills the job or the command (docs/reliability.md). On the real local cluster, with
docker-compatible podman."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import containers, eventually, glm5, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def job_processes(job_id: str) -> list[tuple[str, str, str]]:
    """(pid, parent pid, command name) of every process of the job, from /proc (the nodes share it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if _environ(pid).get("SLURM_JOB_ID") == job_id:
            try:
                ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            found.append((pid, ppid, _comm(pid)))
    return found


def batch_process(job_id: str) -> str:
    """The job's main process: the batch script slurmstepd started."""
    (pid,) = [pid for pid, ppid, _ in job_processes(job_id) if _comm(ppid) == "slurmstepd"]
    return pid


def stage_process(job_id: str) -> str:
    """The stage's Python process (submitit's runner, which holds the job's lifeline)."""
    (pid,) = [pid for pid, ppid, comm in job_processes(job_id) if comm.startswith("python") and ppid == batch_process(job_id)]
    return pid


def deployment_containers(name: str) -> set[str]:
    return {c for c in containers() if c.startswith(f"glm5-{name}-")}


def healthy_serve_job(make_profile: Callable[..., Path], name: str) -> str:
    glm5("submit", "--profile", str(make_profile(name)), "--name", name, "--wait", "--timeout", "240", check=True)
    job = status_json(name)["stages"][-1]["job_id"]
    assert deployment_containers(name) == {f"glm5-{name}-serve-{job}"}
    return str(job)


@pytest.mark.parametrize("victim", ["batch", "stage"])
def test_no_container_outlives_a_killed_job(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path, victim: str
) -> None:
    """SIGKILL of the batch script (Slurm after KillWait) or of the stage process (the OOM
    killer's pick): no trap runs, yet the container ends with the job."""
    name = f"kill9{victim}"
    cleanup_deployments.append(name)
    job = healthy_serve_job(make_profile, name)
    pid = batch_process(job) if victim == "batch" else stage_process(job)
    os.kill(int(pid), signal.SIGKILL)
    assert eventually(lambda: job not in squeue_ids(), timeout_s=90)
    assert eventually(lambda: not deployment_containers(name), timeout_s=60), deployment_containers(name)
    dep = status_json(name)
    assert dep["phase"] == "ended"
    if victim == "stage":  # the trap's process lived on: the container's lifeline ended it
        log = (Path(dep["logs"]) / f"{job}_0_log.out").read_text()
        assert "the Slurm job of this container has ended; stopping the container" in log


def test_a_stale_container_of_a_dead_job_is_removed_by_the_next_job(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """What a node reboot leaves (a container whose job is gone, the engine never told): the next
    job of the deployment removes it before it starts its own."""
    name = "stale"
    cleanup_deployments.append(name)
    stale = f"glm5-{name}-serve-999999"
    image = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=localhost/glm5-standin/*"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip
    subprocess.run(
        ["podman", "run", "-d", "--name", stale, "--label", f"glm5_hpc.deployment={name}", "--label", "glm5_hpc.job=999999",
         image, "sleep", "600"],
        capture_output=True, check=True,
    )  # fmt: skip
    other = "glm5-staleother-serve-999998"  # another deployment's: not this deployment's to remove
    subprocess.run(
        ["podman", "run", "-d", "--name", other, "--label", "glm5_hpc.deployment=staleother", image, "sleep", "600"],
        capture_output=True, check=True,
    )  # fmt: skip
    try:
        healthy_serve_job(make_profile, name)
        assert stale not in containers() and other in containers()
        logs = "".join(p.read_text() for p in Path(status_json(name)["logs"]).glob("*_log.out"))
        assert f"removing container {stale}: its job 999999 is no longer in the queue" in logs
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", stale, other], capture_output=True)
