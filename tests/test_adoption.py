"""Adoption finds every job of an interrupted run, also those sacct leaves out of a time window:
a job whose eligible time is Unknown (a dependant killed by --kill-on-invalid-dep) or in the
future (a --begin job cancelled before it started). Plain `sacct -S` misses both."""

from __future__ import annotations

import getpass
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from glm5_hpc.adapters import slurm
from tests.conftest import GLM5_HPC, dies_after_sbatch, eventually, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")


def test_a_dependant_killed_while_no_one_recorded_it_is_adopted(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """glm5_hpc dies right after the serve job's sbatch; prep then fails, so Slurm kills build and
    serve (--kill-on-invalid-dep) before any command looked: serve's job is only in accounting,
    with an Unknown eligible time. status still finds it and settles the run."""
    profile = make_profile("orphan")
    model = Path(yaml.safe_load(profile.read_text())["model"]["path"])
    (model / "tokenizer_config.json").write_text("{")  # prep-model fails on it
    cleanup_deployments.append("orphan")
    died = subprocess.run([str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "orphan"],
                          env=dies_after_sbatch("serve"), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert died.returncode == 137, died.stderr
    record = json.loads((state_dir / "deployments" / "orphan.json").read_text())
    run = record["runs"][0]
    assert run["submission"] == "in progress" and "serve" not in {s["stage"] for s in run["stages"]}
    mine = ["squeue", "-h", "-u", getpass.getuser(), "-o", "%k"]
    assert eventually(lambda: f"glm5_hpc:orphan:{run['run_id']}" not in subprocess.run(mine, capture_output=True,
                      text=True).stdout, timeout_s=120)  # fmt: skip
    dep = status_json("orphan")
    serve = next(s for s in dep["stages"] if s["stage"] == "serve")
    assert dep["submission"] == "complete (jobs adopted)", dep["submission"]
    assert serve["job_id"] and serve["state"] == "CANCELLED" and serve["job_id"] not in squeue_ids()
    assert "stage prep-model" in dep["failure"]
    # once slurmctld forgets it (MinJobAge), accounting alone knows the job, asked by end state
    found = lambda: slurm.accounted_with_comment(f"glm5_hpc:orphan:{run['run_id']}", run["submitted_at"])  # noqa: E731
    assert eventually(lambda: serve["job_id"] in found(), timeout_s=30)


def test_a_cancelled_begin_job_is_found_by_its_comment() -> None:
    comment = f"glm5_hpc:adopt-test:{time.time_ns()}"
    since = time.time()
    out = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-t", "1", "--mem=50M", f"--comment={comment}", "-J",
                          "glm5-adopt-test-serve", "--begin=now+3600", "--wrap", "true"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    job = out.split(";")[0]
    subprocess.run(["scancel", job], check=True)
    assert eventually(lambda: job not in squeue_ids(), timeout_s=30)
    assert slurm.find_jobs(comment, since) == {job: "glm5-adopt-test-serve"}  # slurmctld still holds it
    assert eventually(lambda: slurm.accounted_with_comment(comment, since) == {job: "glm5-adopt-test-serve"}, timeout_s=30)
