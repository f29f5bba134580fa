"""Nothing escapes: every job and container a deployment started stays within reach of cancel,
whatever kills the job or the command (docs/reliability.md). On the real local cluster, with
docker-compatible podman."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    CLUSTER_NAME,
    GLM5_HPC,
    comment_jobs,
    containers,
    dies_after_sbatch,
    eventually,
    glm5,
    routed_profile,
    squeue_ids,
    status_json,
)

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


def assert_private(run_dir: Path) -> None:
    """The run's directories 0700 (what a container creates inside keeps its own modes, out of reach
    all the same); what the job and the submitting command wrote (scripts, Slurm logs, submitit's
    pickles, the health file) 0600 or 0700: nothing for other users of the cluster."""
    dirs = [run_dir.parent.parent, run_dir, run_dir / "scripts", run_dir / "slurm"]
    assert all(d.stat().st_mode & 0o777 == 0o700 for d in dirs), {str(d): oct(d.stat().st_mode) for d in dirs}
    written = [*(run_dir / "scripts").iterdir(), *(run_dir / "slurm").iterdir(), run_dir / "health.json"]
    assert any(p.suffix == ".pkl" for p in written) and any(p.name.endswith("_log.out") for p in written)
    assert all(p.stat().st_mode & 0o077 == 0 for p in written), {str(p): oct(p.stat().st_mode) for p in written}


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
        ["podman", "run", "-d", "--name", stale, "--label", f"glm5_hpc.cluster={CLUSTER_NAME}",
         "--label", f"glm5_hpc.deployment={name}", "--label", "glm5_hpc.job=999999", image, "sleep", "600"],
        capture_output=True, check=True,
    )  # fmt: skip
    other = "glm5-staleother-serve-999998"  # another deployment's: not this deployment's to remove
    subprocess.run(
        ["podman", "run", "-d", "--name", other, "--label", f"glm5_hpc.cluster={CLUSTER_NAME}",
         "--label", "glm5_hpc.deployment=staleother", image, "sleep", "600"],
        capture_output=True, check=True,
    )  # fmt: skip
    try:
        doctor = glm5("doctor", "--profile", str(make_profile("staledoc")), timeout=400)
        assert doctor.returncode == 1 and "FAIL  no container outlives its job" in doctor.stdout, doctor.stdout
        assert stale in doctor.stdout and other in doctor.stdout
        healthy_serve_job(make_profile, name)
        assert stale not in containers() and other in containers()
        logs = "".join(p.read_text() for p in Path(status_json(name)["logs"]).glob("*_log.out"))
        assert f"removing container {stale}: its job 999999 is no longer in the queue" in logs
        assert_private(Path(status_json(name)["logs"]).parent)
    finally:
        subprocess.run(["podman", "rm", "-f", "-i", "-t", "0", stale, other], capture_output=True)


def test_jobs_the_record_lacks_are_found_by_submit_and_cancel(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """The command dies right after the serve job's sbatch (SIGKILL, OOM, a dropped SSH session):
    submitting again refuses, naming that job, instead of running beside it, and cancel ends it,
    with a job of the deployment no run knows (a lost record) as well."""
    name = "unrec"
    cleanup_deployments.append(name)
    profile = make_profile(name)
    cmd = [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", name]
    died = subprocess.run(cmd, env=dies_after_sbatch("serve"), capture_output=True, text=True, cwd="/", timeout=120)
    assert died.returncode == 137, died.stderr
    (serve,) = subprocess.run(["squeue", "-h", "-n", f"glm5-{name}-serve", "-o", "%i"], capture_output=True, text=True,
                              check=True).stdout.split()  # fmt: skip
    stray = subprocess.run(
        ["sbatch", "--parsable", "-J", f"glm5-{name}-serve", f"--comment=glm5_hpc:{name}:20260101-000000-dead",
         "-o", "/dev/null", "--wrap", "sleep 600"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    again = glm5("submit", "--profile", str(profile), "--name", name)
    assert again.returncode == 1 and serve in again.stderr and stray in again.stderr, again.stderr
    record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    assert len(record["runs"]) == 1  # nothing submitted beside them
    run = record["runs"][0]
    assert {"stage": "serve", "job_id": serve, "adopted": True} in run["stages"]
    assert run["submission"] == "complete (jobs adopted)"
    assert [a["job_id"] for a in run["adopted"]] == [stray]
    cancelled = glm5("cancel", name, check=True).stdout
    assert serve in cancelled and stray in cancelled, cancelled
    assert eventually(lambda: not comment_jobs(name), timeout_s=90)
    assert eventually(lambda: not deployment_containers(name), timeout_s=60)
    assert "nothing left to cancel" in glm5("cancel", name, check=True).stdout


def _replacing(state_dir: Path, name: str) -> bool:
    try:
        record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(record["runs"][-1].get("replaces")) and record["runs"][-1].get("submission") == "complete"


def test_redeploy_without_downtime_interrupted_or_killed(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """Ctrl-C while the replacement starts: it is cancelled and the old run stays current. SIGKILL
    there: status shows which run's job holds the route, and cancel removes every job."""
    name = "bgstop"
    cleanup_deployments.append(name)
    profile = routed_profile(make_profile, name)
    glm5("submit", "--profile", str(profile), "--name", name, "--wait", "--timeout", "240", check=True)
    old = status_json(name)
    assert old["healthy"] and old["route_job"]
    serve_log = Path(old["logs"]) / f"{old['route_job']}_0_log.out"
    for route in ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events"):
        assert httpx.post(f"{old['stable_endpoint']}{route}", json={}, timeout=10).status_code == 403
    assert "control route called" not in serve_log.read_text()  # the router forwarded none of them ...
    assert httpx.post(f"{old['endpoint']}/release_memory", json={}, timeout=10).status_code == 200
    assert eventually(lambda: "control route called: POST /release_memory" in serve_log.read_text(), timeout_s=10)
    broken = routed_profile(make_profile, f"{name}-broken", container={"env": {"GLM5_STANDIN_FAULT": "hang"}},
                            work_dir=str(profile.parent / "work"))  # fmt: skip
    cmd = [str(GLM5_HPC), "redeploy", name, "--no-downtime", "--profile", str(broken), "--timeout", "600"]

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    assert eventually(lambda: _replacing(state_dir, name), timeout_s=60)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130 and f"run {old['run_id']} keeps serving" in out, out + err
    record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    (abandoned,) = record["failed_replacements"]
    assert record["runs"][-1]["run_id"] == old["run_id"] and abandoned["failure"] == "redeploy --no-downtime was interrupted"
    assert not {s["job_id"] for s in abandoned["stages"] if s["job_id"]} & squeue_ids()
    kept = status_json(name)
    assert kept["healthy"] and kept["route_job"] == old["route_job"] and kept["run_id"] == old["run_id"]

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    assert eventually(lambda: _replacing(state_dir, name), timeout_s=60)
    proc.kill()
    proc.wait(timeout=30)
    cut = status_json(name)
    assert cut["replaces"] == old["run_id"] and cut["run_id"] != old["run_id"]
    assert cut["route_job"] == old["route_job"] and cut["route_run"] == old["run_id"], cut
    assert "not the current run" in glm5("status", name, check=True).stdout
    glm5("cancel", name, check=True)
    assert eventually(lambda: not comment_jobs(name), timeout_s=120), comment_jobs(name)
    assert eventually(lambda: not deployment_containers(name), timeout_s=60), deployment_containers(name)


def test_relative_profile_path_and_a_deleted_run_directory(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """`--profile ./x.yaml` is recorded as an absolute path, so redeploy works from any directory;
    a live run whose directory was deleted is reported as such by status and logs."""
    name = "relpath"
    cleanup_deployments.append(name)
    profile = make_profile(name)
    proc = subprocess.run([str(GLM5_HPC), "submit", "--profile", f"./{profile.name}", "--name", name, "--wait",
                           "--timeout", "240"], capture_output=True, text=True, cwd=profile.parent, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    assert record["runs"][-1]["profile_file"] == str(profile)
    dep = status_json(name)
    run_dir = Path(dep["run_dir"])
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    gone = status_json(name)
    assert gone["failure"].startswith(f"run directory {run_dir} is missing"), gone["failure"]
    logs = glm5("logs", name)
    assert logs.returncode == 1 and f"run directory {run_dir} of deployment 'relpath' is missing" in logs.stderr
    glm5("redeploy", name, "--wait", "--timeout", "240", check=True)  # from "/": the recorded absolute path
    assert status_json(name)["healthy"]
