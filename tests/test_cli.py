"""The command line: every command documented, clean one-line errors, and what the wheel ships."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glm5_hpc.cli import COMMANDS
from tests.conftest import REPO, glm5


def test_help_and_module_entry_point() -> None:
    out = glm5("--help", check=True).stdout
    for command in COMMANDS:
        assert command in out
    mod = subprocess.run([sys.executable, "-m", "glm5_hpc", "--version"], capture_output=True, text=True, cwd="/")
    assert mod.returncode == 0 and mod.stdout.startswith("glm5_hpc ")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    proc = glm5(command, "--help", check=True)
    assert "usage: glm5_hpc " + command in proc.stdout
    assert f"glm5_hpc {command}" in (REPO / "README.md").read_text()


def test_bad_profile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("work_dir: /w\nmodel: {path: /m}\nstages: {}\nserve: {tp_sise: 8}\n")
    proc = glm5("submit", "--profile", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"glm5_hpc: error: profile {bad}: ")


def test_unknown_deployment(tmp_path: Path) -> None:
    proc = glm5("cancel", "nosuch")
    assert proc.returncode == 2 and "no deployment named 'nosuch'" in proc.stderr


def test_wheel_ships_jobs_templates_and_profiles(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("glm5_hpc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "jobs/stage.py",
        "jobs/watcher.py",
        "jobs/patch_flashinfer.py",
        "sbatch/serve.sh",
        "sbatch/runtime-docker.sh",
        "cluster_profiles/local.yaml",
        "cluster_profiles/example-b200.yaml",
        "glm5_hpc/py.typed",
    ):
        assert required in names, required


@pytest.mark.parametrize("command", ["cancel", "redeploy", "logs", "status"])
def test_deployment_names_never_become_paths_outside_the_store(command: str, state_dir: Path) -> None:
    proc = glm5(command, "../escape")
    assert proc.returncode == 2
    assert "deployment name '../escape' must match" in proc.stderr
    assert not (state_dir / "escape.json").exists() and not (state_dir / ".escape.lock").exists()


def test_no_downtime_redeploy_needs_the_router(state_dir: Path) -> None:
    """Refused before anything reaches Slurm, naming the profile key."""
    profile = REPO / "cluster_profiles" / "local.yaml"
    (state_dir / "deployments").mkdir(parents=True)
    run = {"run_id": "r", "profile_file": str(profile), "stages": [], "submission": "complete"}
    (state_dir / "deployments" / "d.json").write_text(json.dumps({"schema": 1, "name": "d", "profile": "local", "runs": [run]}))
    proc = glm5("redeploy", "d", "--no-downtime")
    assert proc.returncode == 2 and "redeploy --no-downtime needs router.enabled: true in profile" in proc.stderr
    assert json.loads((state_dir / "deployments" / "d.json").read_text())["runs"] == [run]  # nothing changed


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["submit", "--profile", "local", "--wait", "--timeout", "-5"], "argument --timeout: '-5' is not a number of seconds"),
        (["redeploy", "x", "--timeout", "nan"], "argument --timeout: 'nan' is not a number of seconds"),
        (["status", "--watch", "--interval", "-1"], "argument --interval: '-1' is not a number of seconds above 0"),
        (["status", "--watch", "--interval", "0"], "argument --interval: '0' is not a number of seconds above 0"),
        (["logs", "x", "-n", "0"], "argument -n/--lines: '0' is not a whole number of 1 or more"),
        (["logs", "x", "-n", "-3"], "argument -n/--lines: '-3' is not a whole number of 1 or more"),
        (["probe", "--url", "http://[::1"], "argument --url: 'http://[::1' is not an http(s) URL with a host"),
        (["probe", "--url", "localhost:8000"], "argument --url: 'localhost:8000' is not an http(s) URL with a host"),
        (["tunnel", "x", "--local-port", "70000"], "argument --local-port: '70000' is not a port number"),
    ],
)
def test_bad_arguments_exit_2_naming_them_before_anything_runs(argv: list[str], named: str, state_dir: Path) -> None:
    proc = glm5(*argv)
    assert proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not state_dir.exists()  # nothing was recorded, so nothing was submitted
