"""Reading a deployment record (a JSON document; see adapters/store.py for where it lives).

A record holds every run of the deployment, newest last. A run lists its planned stages before
any sbatch, then each stage's job id as soon as sbatch returns, so a job is never forgotten.
"""

from __future__ import annotations

from typing import Any

from glm5_hpc.adapters.files import read_json_list
from glm5_hpc.domain.slurm_state import JobInfo

Record = dict[str, Any]
Run = dict[str, Any]


def current_run(rec: Record) -> Run | None:
    runs = rec.get("runs") or []
    return runs[-1] if runs else None


def job_ids(run: Run | None) -> list[str]:
    """Every job of the run: its stages', the serve jobs that took over by handover, and jobs
    found by their comment that no stage accounts for."""
    run = run or {}
    return (
        [s["job_id"] for s in run.get("stages", []) if s.get("job_id")]
        + [h["job_id"] for h in run.get("handovers", [])]
        + [a["job_id"] for a in run.get("adopted", [])]
    )


def all_runs(rec: Record) -> list[Run]:
    """The runs, then the replacements that failed (kept so that no job id is lost)."""
    return [*rec.get("runs", []), *rec.get("failed_replacements", [])]


def read_handovers(run: Run) -> list[dict[str, Any]]:
    """The successors the run's serve jobs queued (they write the file; the record copies it)."""
    return [h for h in read_json_list(run["handovers_file"]) if h.get("job_id")] if run.get("handovers_file") else []


def missing_stages(run: Run) -> list[str]:
    """Planned stages with no recorded job: the submission stopped between sbatch and the record."""
    have = {s["stage"] for s in run.get("stages", [])}
    return [stage for stage in run.get("planned", []) if stage not in have]


def new_outcomes(run: Run, infos: dict[str, JobInfo]) -> dict[str, dict[str, str]]:
    """{stage: outcome} for stages whose job has ended and whose outcome is not yet recorded."""
    return {
        s["stage"]: {"state": i.state, "exit_code": i.exit_code, "elapsed": i.elapsed, "node": i.node}
        for s in run.get("stages", [])
        if (i := infos.get(s.get("job_id") or "")) is not None and i.terminal and "outcome" not in s
    }


def set_outcomes(run: Run, outcomes: dict[str, dict[str, str]]) -> None:
    for s in run.get("stages", []):
        if s["stage"] in outcomes:
            s["outcome"] = outcomes[s["stage"]]
