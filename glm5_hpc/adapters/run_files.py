"""Reading what a run's jobs wrote on shared storage: each file once per refresh, into the
snapshot domain/status.py derives the status from."""

from __future__ import annotations

from pathlib import Path, PurePath

from glm5_hpc.adapters.files import read_json, read_json_list
from glm5_hpc.domain.record import Handover, HealthDoc, Record, RouterDoc, Run, current_run, job_ids
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.domain.status import OUTCOMES, RunFiles, failed_jobs, log_path, serve_chain


def read_handovers(run: Run) -> list[Handover]:
    """The successors the run's serve jobs queued (they write the file; the record copies it)."""
    if not run.get("handovers_file"):
        return []
    return [h for h in read_json_list(run["handovers_file"]) if h.get("job_id")]  # type: ignore[misc]


def run_job_ids(run: Run) -> list[str]:
    """The run's job ids with the successors its serve jobs queued (the record's copy may lag)."""
    return job_ids(run) + [h["job_id"] for h in read_handovers(run)]


def read_run_files(rec: Record) -> RunFiles:
    """The current run's handovers, health files, route and router files, and the stages'
    outcome files the record does not hold yet."""
    router = rec.get("router")
    where: RouterDoc = read_json(router["router_file"]) if router and router.get("router_file") else {}  # type: ignore[assignment]
    run = current_run(rec)
    if run is None:
        return RunFiles(router=where)
    handovers = read_handovers(run)
    health: dict[str, HealthDoc] = {}
    for _, path in serve_chain(run, handovers):
        if path and (doc := read_json(path)):
            health[path] = doc  # type: ignore[assignment]
    run_dir = run.get("run_dir", "")
    outcomes = {k: doc for k in OUTCOMES if k not in run and run_dir and (doc := read_json(Path(run_dir) / f"{k}.json"))}
    return RunFiles(
        handovers=handovers, health=health, route=read_json(run["route_file"]) if run.get("route_file") else {},
        router=where, outcomes=outcomes, run_dir_missing=bool(run_dir) and not Path(run_dir).is_dir(),
    )  # fmt: skip


def with_log_tails(files: RunFiles, rec: Record, infos: dict[str, JobInfo]) -> RunFiles:
    """The snapshot with the log tails of the current run's failed stages (read only when one failed)."""
    run = current_run(rec)
    jobs = failed_jobs(run, infos) if run else []
    if not jobs or run is None:
        return files
    return files._replace(log_tails={j: log_tail(log_path(run.get("logs", ""), j)) for j in jobs})


def log_tail(path: PurePath | str | None, lines: int = 15) -> str:
    """The stage's own last lines (submitit's bookkeeping lines left out)."""
    if path is None or not Path(path).exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode(errors="replace")
    return "\n".join([ln for ln in text.splitlines() if not ln.startswith("submitit ")][-lines:])
