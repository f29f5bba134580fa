"""Which serve job speaks for a run with handovers and a router: the route holder while it runs,
else the newest job that has started. Pure: a record, health files and Slurm's answers as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glm5_hpc.app.status import status_of
from glm5_hpc.domain.slurm_state import JobInfo


def record(tmp_path: Path, phases: dict[str, str], holder: str) -> dict[str, Any]:
    health = {job: tmp_path / f"health-{job}.json" for job in phases}
    for job, phase in phases.items():
        health[job].write_text(json.dumps({"job_id": job, "phase": phase, "endpoint": f"http://127.0.0.1:{job}"}))
    (tmp_path / "route.json").write_text(json.dumps({"job_id": holder, "url": f"http://127.0.0.1:{holder}", "at": 0}))
    first, *successors = phases
    run = {
        "run_id": "r", "stages": [{"stage": "serve", "job_id": first}], "health_file": str(health[first]),
        "route_file": str(tmp_path / "route.json"),
        "handovers": [{"job_id": j, "health_file": str(health[j])} for j in successors],
    }  # fmt: skip
    return {"name": "d", "runs": [run]}


def infos(states: dict[str, str]) -> dict[str, JobInfo]:
    return {j: JobInfo(j, s, "BeginTime" if s == "PENDING" else "") for j, s in states.items()}


def test_the_holder_speaks_while_its_successor_warms_up(tmp_path: Path) -> None:
    rec = record(tmp_path, {"10": "ready", "11": "loading"}, holder="10")
    st = status_of(rec, infos({"10": "RUNNING", "11": "RUNNING"}))
    assert st.healthy and st.stage("serve").job_id == "10" and st.endpoint == "http://127.0.0.1:10"  # type: ignore[union-attr]
    assert st.route_job == "10" and st.handovers == 1


def test_after_the_handover_the_successor_speaks(tmp_path: Path) -> None:
    rec = record(tmp_path, {"10": "retired", "11": "ready", "12": "starting"}, holder="11")
    st = status_of(rec, infos({"10": "COMPLETED", "11": "RUNNING", "12": "PENDING"}))
    serve = st.stage("serve")
    assert serve is not None and serve.job_id == "11" and serve.state == "RUNNING"
    assert st.healthy and not st.failure and st.next_serve == "job 12, PENDING (BeginTime)"


def test_without_a_running_holder_the_newest_started_job_speaks(tmp_path: Path) -> None:
    rec = record(tmp_path, {"10": "retired", "11": "loading"}, holder="10")
    st = status_of(rec, infos({"10": "COMPLETED", "11": "RUNNING"}))
    assert st.stage("serve").job_id == "11" and st.phase == "loading" and not st.healthy  # type: ignore[union-attr]
