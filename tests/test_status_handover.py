"""Which serve job speaks for a run with handovers and a router: the route holder while it runs,
else the newest job that has started. Pure: a record, the run's files and Slurm's answers as data,
no file read."""

from __future__ import annotations

from glm5_hpc.domain.record import Record, migrate
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.domain.status import RunFiles, status_of


def record(phases: dict[str, str], holder: str) -> tuple[Record, RunFiles]:
    health = {job: f"/w/health-{job}.json" for job in phases}
    first, *successors = phases
    run = {
        "run_id": "r", "stages": [{"stage": "serve", "job_id": first}], "health_file": health[first],
        "route_file": "/w/route.json", "handovers": [{"job_id": j, "health_file": health[j]} for j in successors],
    }  # fmt: skip
    files = RunFiles(
        health={health[j]: {"job_id": j, "phase": p, "endpoint": f"http://127.0.0.1:{j}"} for j, p in phases.items()},
        route={"job_id": holder, "url": f"http://127.0.0.1:{holder}", "at": 0},
    )
    return migrate({"schema": 1, "name": "d", "runs": [run]}, "d"), files


def infos(states: dict[str, str]) -> dict[str, JobInfo]:
    return {j: JobInfo(j, s, "BeginTime" if s == "PENDING" else "") for j, s in states.items()}


def test_the_holder_speaks_while_its_successor_warms_up() -> None:
    rec, files = record({"10": "ready", "11": "loading"}, holder="10")
    st = status_of(rec, infos({"10": "RUNNING", "11": "RUNNING"}), files)
    assert st.healthy and st.stage("serve").job_id == "10" and st.endpoint == "http://127.0.0.1:10"  # type: ignore[union-attr]
    assert st.route_job == "10" and st.handovers == 1


def test_after_the_handover_the_successor_speaks() -> None:
    rec, files = record({"10": "retired", "11": "ready", "12": "starting"}, holder="11")
    st = status_of(rec, infos({"10": "COMPLETED", "11": "RUNNING", "12": "PENDING"}), files)
    serve = st.stage("serve")
    assert serve is not None and serve.job_id == "11" and serve.state == "RUNNING"
    assert st.healthy and not st.failure and st.next_serve == "job 12, PENDING (BeginTime)"


def test_without_a_running_holder_the_newest_started_job_speaks() -> None:
    rec, files = record({"10": "retired", "11": "loading"}, holder="10")
    st = status_of(rec, infos({"10": "COMPLETED", "11": "RUNNING"}), files)
    assert st.stage("serve").job_id == "11" and st.phase == "loading" and not st.healthy  # type: ignore[union-attr]


def test_failure_names_the_failed_stage_with_its_log_tail_and_a_missing_run_dir() -> None:
    run = {"run_id": "r", "stages": [{"stage": "prep-model", "job_id": "7"}, {"stage": "serve", "job_id": "8"}],
           "logs": "/w/slurm", "run_dir": "/w/run"}  # fmt: skip
    rec = migrate({"schema": 1, "name": "d", "runs": [run]}, "d")
    st = status_of(
        rec, {**infos({"8": "PENDING"}), "7": JobInfo("7", "FAILED", exit_code="1:0")}, RunFiles(log_tails={"7": "boom"})
    )
    assert st.failure == "stage prep-model (job 7) ended FAILED, exit code 1:0\n--- last lines of /w/slurm/7_0_log.out ---\nboom"
    gone = status_of(rec, infos({"7": "COMPLETED", "8": "RUNNING"}), RunFiles(run_dir_missing=True))
    assert gone.failure.startswith("run directory /w/run is missing") and gone.phase == "waiting"
