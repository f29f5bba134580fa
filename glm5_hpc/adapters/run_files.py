"""Reading what a run's jobs wrote on shared storage: each file once per refresh, into the
snapshot domain/status.py derives the status from."""

from __future__ import annotations

from pathlib import Path, PurePath

from glm5_hpc.adapters.files import read_json, read_json_list
from glm5_hpc.domain.record import Handover, HealthDoc, Record, RouterDoc, Run, current_run, job_ids, live_replicas
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.domain.status import OUTCOMES, ROUTER_STATS, RunFiles, failed_jobs, log_path, replica_chains


def read_handovers(run: Run) -> list[Handover]:
    """The successors the run's serve jobs queued (they write the file; the record copies it)."""
    return _handovers(run.get("handovers_file", ""))


def _handovers(path: str) -> list[Handover]:
    return [h for h in read_json_list(path) if h.get("job_id")] if path else []  # type: ignore[misc]


def read_replica_handovers(run: Run) -> dict[int, list[Handover]]:
    """The successors each replica beyond the first queued (replica i: handovers-r<i>.json), every
    replica the run ever had (scaled-down ones too: their jobs must still be found)."""
    return {r["index"]: found for r in run.get("replicas", []) if (found := _handovers(r["handovers_file"]))}


def run_job_ids(run: Run) -> list[str]:
    """The run's job ids with the successors its serve jobs queued (the record's copy may lag)."""
    later = [h["job_id"] for hs in [read_handovers(run), *read_replica_handovers(run).values()] for h in hs]
    return list(dict.fromkeys(job_ids(run) + later))


def read_run_files(rec: Record) -> RunFiles:
    """The current run's handovers, health files, route and router files, and the stages'
    outcome files the record does not hold yet."""
    router = rec.get("router")
    where: RouterDoc = read_json(router["router_file"]) if router and router.get("router_file") else {}  # type: ignore[assignment]
    run = current_run(rec)
    if run is None:
        return RunFiles(router=where)
    files = RunFiles(handovers=read_handovers(run), replica_handovers=read_replica_handovers(run))
    health: dict[str, HealthDoc] = {}
    for chain in replica_chains(run, files).values():
        for _, path in chain:
            if path and (doc := read_json(path)):
                health[path] = doc  # type: ignore[assignment]
    run_dir = run.get("run_dir", "")
    outcomes = {k: doc for k in OUTCOMES if k not in run and run_dir and (doc := read_json(Path(run_dir) / f"{k}.json"))}
    routes = {r["index"]: read_json(r["route_file"]) for r in live_replicas(run) if run.get("route_file")}
    stats = read_json(Path(router["router_file"]).with_name(ROUTER_STATS)) if router and router.get("router_file") else {}
    return files._replace(
        health=health, route=read_json(run["route_file"]) if run.get("route_file") else {}, router=where, outcomes=outcomes,
        run_dir_missing=bool(run_dir) and not Path(run_dir).is_dir(), replica_routes=routes, router_stats=stats,
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
