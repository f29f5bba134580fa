"""Deployment lifecycle on the real local cluster: never lose a job, never leave one pending,
keep slurmctld's load constant, redeploy only what is needed."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GLM5_HPC, GPU_NODES, containers, dies_after_sbatch, eventually, glm5, squeue_ids, status_json

pytestmark = pytest.mark.usefixtures("cluster")


def stage_ids(dep: dict) -> dict[str, str | None]:
    return {s["stage"]: s["job_id"] for s in dep["stages"]}


def test_two_submits_at_once_one_wins(make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path) -> None:
    profile = make_profile("race")
    cleanup_deployments.append("race")
    cmd = [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", "race"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert sorted(rc for rc, _, _ in results) == [0, 1]
    loser = next(err for rc, _, err in results if rc == 1)
    assert "is being changed by another glm5_hpc command" in loser or "still has jobs in Slurm" in loser
    record = json.loads((state_dir / "deployments" / "race.json").read_text())
    assert len(record["runs"]) == 1 and len(record["runs"][0]["stages"]) == 3


def test_submit_again_waits_for_the_live_deployment(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    """The README's first command run a second time while its deployment serves: it says so, waits
    for the running deployment (already healthy: at once) and prints its endpoint; no second chain."""
    profile = make_profile("twice")
    cleanup_deployments.append("twice")
    glm5("submit", "--profile", str(profile), "--name", "twice", "--wait", "--timeout", "240", check=True)
    jobs = squeue_ids()
    again = glm5("submit", "--profile", str(profile), "--name", "twice", "--wait", "--timeout", "60", check=True)
    serve = status_json("twice")["stages"][2]["job_id"]
    assert again.stdout.startswith(f"deployment twice is already submitted (jobs {serve}): waiting for it"), again.stdout
    assert f"healthy: {status_json('twice')['endpoint']}" in again.stdout
    assert squeue_ids() <= jobs  # nothing new was submitted
    record = json.loads((state_dir / "deployments" / "twice.json").read_text())
    assert len(record["runs"]) == 1
    plain = glm5("submit", "--profile", str(profile), "--name", "twice")
    assert plain.returncode == 1 and f"deployment 'twice' still has jobs in Slurm ({serve})" in plain.stderr


def test_one_bad_record_is_one_line_and_the_others_still_show(state_dir: Path) -> None:
    """A truncated record, a wrong shape, a directory and a dangling symlink: each is one line
    naming its file, and the good deployment still shows."""
    d = state_dir / "deployments"
    d.mkdir(parents=True)
    (d / "good.json").write_text(json.dumps({"schema": 1, "name": "good", "runs": []}))
    (d / "truncated.json").write_text('{"schema": 1, "name": "truncated", "runs": [')
    (d / "shape.json").write_text(json.dumps({"schema": 1, "name": "shape", "runs": {"0": "x"}}))
    (d / "adir.json").mkdir()
    (d / "dangling.json").symlink_to(d / "nowhere.json")
    bad = ("adir", "dangling", "shape", "truncated")
    for cmd in (["status"], ["list"], ["status", "--json"], ["list", "--json"], ["status", "good", *bad]):
        proc = glm5(*cmd)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (cmd, proc.stderr)
        assert proc.stderr.strip() == f"glm5_hpc: error: unreadable deployment record(s): {', '.join(bad)}", cmd
        assert "good" in proc.stdout and all(str(d / f"{name}.json") in proc.stdout for name in bad), (cmd, proc.stdout)
    assert "corrupt" in glm5("status", "truncated").stdout and "directory" in glm5("status", "adir").stdout
    assert glm5("status", "good").returncode == 0


@pytest.mark.parametrize("die_after", ["build-wheel", "serve"])
def test_killed_right_after_sbatch_loses_no_job(
    die_after: str, make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    name = f"die-{die_after.split('-')[0]}"
    profile = make_profile(name)
    cleanup_deployments.append(name)
    proc = subprocess.run(
        [str(GLM5_HPC), "submit", "--profile", str(profile), "--name", name],
        env=dies_after_sbatch(die_after),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 137
    record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    recorded = {s["stage"] for s in record["runs"][0]["stages"]}
    assert die_after not in recorded and record["runs"][0]["submission"] == "in progress"
    # the job sbatch created is in Slurm, carrying the run id; status finds and adopts it
    dep = status_json(name)
    ids = stage_ids(dep)
    assert ids[die_after] is not None
    names = subprocess.run(
        ["squeue", "-h", "-o", "%j|%k", "-j", ids[die_after]], capture_output=True, text=True, check=True
    ).stdout.strip()  # squeue: sacct may not list a job submitted a moment ago
    assert names == f"glm5-{name}-{die_after}|glm5_hpc:{name}:{dep['run_id']}"
    record = json.loads((state_dir / "deployments" / f"{name}.json").read_text())
    adopted = next(s for s in record["runs"][0]["stages"] if s["stage"] == die_after)
    assert adopted == {"stage": die_after, "job_id": ids[die_after], "adopted": True}
    if die_after == "serve":
        assert dep["submission"] == "complete (jobs adopted)"
        assert glm5("redeploy", name, "--wait", "--timeout", "240").returncode == 0  # carries on normally
    else:
        assert dep["submission"] == "interrupted: serve never submitted"
        assert f"use glm5_hpc redeploy {name}" in dep["failure"]
        redeploy = glm5("redeploy", name, "--wait", "--timeout", "240")
        assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
        assert ids["build-wheel"] not in squeue_ids()  # the adopted job was cancelled, not orphaned


@pytest.fixture
def counted_path(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """PATH with wrappers that log every sacct/squeue/sbatch call, then run the real command."""
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    for cmd in ("sacct", "squeue", "sbatch", "scancel"):
        (bindir / cmd).write_text(f'#!/bin/sh\necho {cmd} >> {log}\nexec /usr/bin/{cmd} "$@"\n')
        (bindir / cmd).chmod(0o755)
    yield {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}, log


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_status_of_50_deployments_costs_one_sacct_and_one_squeue(
    state_dir: Path, counted_path: tuple[dict[str, str], Path]
) -> None:
    # 150 real jobs, held so they stay pending (JobHeldUser), recorded as 50 deployments of 3 stages
    ids = [
        subprocess.run(
            ["sbatch", "--parsable", "--hold", "-p", "cpu", "--mem=10", "-J", f"held-{i}", "--wrap", "true"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for i in range(150)
    ]
    try:
        (state_dir / "deployments").mkdir(parents=True)
        for d in range(50):
            stages = [{"stage": st, "job_id": ids[3 * d + k]} for k, st in enumerate(("prep-model", "build-wheel", "serve"))]
            run = {
                "run_id": f"r{d}",
                "run_dir": str(state_dir / "none"),
                "health_file": str(state_dir / "none" / "h.json"),
                "logs": "",
                "planned": [s["stage"] for s in stages],
                "stages": stages,
                "submission": "complete",
            }
            (state_dir / "deployments" / f"d{d:02d}.json").write_text(
                json.dumps({"schema": 1, "name": f"d{d:02d}", "runs": [run]})
            )
        env, log = counted_path
        proc = subprocess.run([str(GLM5_HPC), "status", "--json"], env=env, capture_output=True, text=True, check=True)
        deps = json.loads(proc.stdout)["deployments"]
        assert len(deps) == 50
        assert {s["state"] for d in deps for s in d["stages"]} == {"PENDING"}
        assert {s["reason"] for d in deps for s in d["stages"]} == {"JobHeldUser"}
        assert sorted(calls(log)) == ["sacct", "squeue"]
        log.unlink()
        subprocess.run([str(GLM5_HPC), "list"], env=env, capture_output=True, text=True, check=True)
        assert sorted(calls(log)) == ["sacct", "squeue"]
        log.unlink()
        # --watch: one sacct and one squeue per Slurm query, and fewer queries than refreshes while
        # nothing changes. Counted over 8 refreshes, however long each takes on this machine: the
        # pause between queries doubles (0.5, 1, 2, 4 s ...) while a refresh waits 0.5 s plus its own time.
        watch = subprocess.Popen(
            [str(GLM5_HPC), "status", "--watch", "--interval", "0.5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        guard = threading.Timer(180, watch.kill)
        guard.start()
        refreshes = 0
        try:
            for line in watch.stdout:  # type: ignore[union-attr]
                refreshes += line.startswith("-- ")
                if refreshes == 8:
                    break  # just after a refresh: its query is done, the next one is 0.5 s away
        finally:
            watch.terminate()
            watch.communicate(timeout=10)
            guard.cancel()
        assert refreshes == 8
        made = calls(log)
        assert made.count("sacct") == made.count("squeue") and 2 <= made.count("sacct") < refreshes
    finally:
        subprocess.run(["scancel", *ids], check=True)


def test_failed_stage_named_by_status_and_nothing_left_pending(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], tmp_path: Path
) -> None:
    from tests.test_chain import drifted_repo

    profile = make_profile("fails", recipe={"source": {"repo": str(drifted_repo(tmp_path))}})
    cleanup_deployments.append("fails")
    glm5("submit", "--profile", str(profile), "--name", "fails", check=True)
    assert eventually(lambda: status_json("fails")["stages"][2]["state"] == "CANCELLED", timeout_s=120)
    dep = status_json("fails")
    assert dep["failure"].startswith(f"stage build-wheel (job {stage_ids(dep)['build-wheel']}) ended FAILED, exit code 1:0")
    assert "patch 'mla-context-head-size-v' cannot be applied" in dep["failure"]
    assert not (set(filter(None, stage_ids(dep).values())) & squeue_ids())
    human = glm5("status", "fails", check=True).stdout
    assert "failure:  stage build-wheel" in human
    record = json.loads(glm5("status", "fails", "--json", check=True).stdout)  # outcomes are now in the record too
    assert record["deployments"][0]["stages"][1]["exit_code"] == "1:0"


def test_logs(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("logs")
    cleanup_deployments.append("logs")
    assert glm5("submit", "--profile", str(profile), "--name", "logs", "--wait", "--timeout", "240").returncode == 0
    prep = glm5("logs", "logs", "prep-model", "-n", "5", check=True).stdout
    assert "config.json: changed: architectures -> [DeepseekV32ForCausalLM]" in prep
    followed = glm5("logs", "logs", "build-wheel", "-f", timeout=60, check=True).stdout
    assert "Successfully built tensorrt_llm-1.3.0rc3-py3-none-any.whl" in followed
    assert followed.rstrip().endswith("ended COMPLETED --")
    serve = glm5("logs", "logs", check=True).stdout  # default: the latest stage with a job
    assert "Application startup complete." in serve


def test_redeploy_resubmits_only_serve_and_keeps_history(
    make_profile: Callable[..., Path], cleanup_deployments: list[str], state_dir: Path
) -> None:
    profile = make_profile("redo")
    cleanup_deployments.append("redo")
    assert glm5("submit", "--profile", str(profile), "--name", "redo", "--wait", "--timeout", "240").returncode == 0
    first = status_json("redo")
    old_serve = stage_ids(first)["serve"]
    old_container = f"glm5-redo-serve-{old_serve}"
    assert old_container in containers()

    proc = glm5("redeploy", "redo", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prep-model=skipped, build-wheel=skipped, serve=" in proc.stdout
    second = status_json("redo")
    assert second["runs"] == 2 and second["run_id"] != first["run_id"] and second["healthy"]
    reasons = {s["stage"]: s["reason"] for s in second["stages"]}
    assert reasons["prep-model"] == "checkpoint already prepared" and reasons["build-wheel"] == "wheel cached"
    assert old_container not in containers() and old_serve not in squeue_ids()
    new_serve = stage_ids(second)["serve"]
    script = Path(second["logs"]) / f"{new_serve}_submission.sh"
    assert "--dependency" not in script.read_text()  # serve alone: no chain on old job ids

    proc = glm5("redeploy", "redo", "--from", "prep-model", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    third = status_json("redo")
    ids = stage_ids(third)
    assert all(ids.values()) and third["runs"] == 3
    build_script = (Path(third["logs"]) / f"{ids['build-wheel']}_submission.sh").read_text()
    assert f"#SBATCH --dependency=afterok:{ids['prep-model']}\n" in build_script  # the new run's own ids only
    record = json.loads((state_dir / "deployments" / "redo.json").read_text())
    assert [r["run_id"] for r in record["runs"]] == [first["run_id"], second["run_id"], third["run_id"]]
    assert record["runs"][0]["stages"][2]["outcome"]["state"] == "CANCELLED"
    assert [h["phase"] for h in record["runs"][0]["health_history"]][-1] == "ready"


def test_two_deployments_of_one_profile(make_profile: Callable[..., Path], cleanup_deployments: list[str]) -> None:
    profile = make_profile("pair", serve={"port": "auto"})  # 8 GPUs each: one GPU node each
    cleanup_deployments.extend(["pair-a", "pair-b"])
    for name in ("pair-a", "pair-b"):
        glm5("submit", "--profile", str(profile), "--name", name, check=True)
    for name in ("pair-a", "pair-b"):
        proc = subprocess.run([str(GLM5_HPC), "status", name], capture_output=True, text=True)
        assert proc.returncode == 0
    assert eventually(lambda: all(status_json(n)["healthy"] for n in ("pair-a", "pair-b")), timeout_s=180)
    nodes = {status_json(n)["stages"][2]["node"] for n in ("pair-a", "pair-b")}
    assert nodes == set(GPU_NODES)  # each serve job holds a whole GPU node
    listed = glm5("list", check=True).stdout
    assert "pair-a" in listed and "pair-b" in listed
    glm5("cancel", "pair-a", check=True)
    assert eventually(lambda: not status_json("pair-a")["healthy"])
    assert status_json("pair-b")["healthy"]
