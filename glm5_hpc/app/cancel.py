"""Use case: cancel every live job of a deployment. The stage scripts trap SIGTERM and remove
their containers, so cancelling the jobs is what frees the GPUs."""

from __future__ import annotations

import time

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.run_files import read_handovers, run_job_ids
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.record_repair import adopt_live_jobs
from glm5_hpc.app.router_record import adopt_router
from glm5_hpc.domain.record import Record, Run, all_runs, current_run, new_outcomes, set_outcomes
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.errors import SlurmError

GONE_TIMEOUT_S = 180.0  # Slurm's KillWait (30 s by default) plus the container's stop timeout, with margin


def cancel_live_jobs(store: Store, rec: Record, wait: bool = False, run: Run | None = None) -> list[str]:
    """scancel the live jobs of a run (the current one by default), handover successors included,
    and record it; with `wait`, return only once Slurm reports none of them live, with every
    stage's final outcome recorded (the caller holds the deployment's lock)."""
    run = run if run is not None else current_run(rec)
    if run is None:
        return []
    cancelled: list[str] = []
    for _ in range(3):  # a serve job being cancelled may just have queued its successor: look again
        run["handovers"] = read_handovers(run) or run.get("handovers", [])
        ids = run_job_ids(run)
        live = [j.job_id for j in slurm.query(ids).values() if j.live and j.job_id not in cancelled]
        if not live:
            break
        slurm.cancel(live)
        cancelled += live
        run.setdefault("cancelled", []).append({"at": time.time(), "job_ids": live})
        store.save(rec)
        if wait:
            set_outcomes(run, new_outcomes(run, wait_gone(ids)))
            store.save(rec)
    return cancelled


def live_jobs(rec: Record) -> dict[str, Run]:
    """{job id: its run} of the jobs in the queue, across every run (failed replacements
    included), the router aside: one Slurm query."""
    infos = slurm.query([j for run in all_runs(rec) for j in run_job_ids(run)])
    return {j: run for run in all_runs(rec) for j in run_job_ids(run) if (i := infos.get(j)) is not None and i.live}


def cancel_runs(store: Store, rec: Record, wait: bool = False) -> list[str]:
    """cancel_live_jobs for every run that has a live job, not only the current one."""
    runs = {id(run): run for run in live_jobs(rec).values()}
    return [j for run in runs.values() for j in cancel_live_jobs(store, rec, wait=wait, run=run)]


def wait_gone(ids: list[str]) -> dict[str, JobInfo]:
    deadline, delay = time.monotonic() + GONE_TIMEOUT_S, 0.5
    while True:
        infos = slurm.query(ids)
        still = [j.job_id for j in infos.values() if j.live]
        if not still:
            return infos
        if time.monotonic() > deadline:
            raise SlurmError(f"jobs {', '.join(still)} still live {GONE_TIMEOUT_S:g}s after scancel; check squeue")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def cancel_router(store: Store, rec: Record) -> list[str]:
    if adopt_router(rec):
        store.save(rec)
    router = rec.get("router")
    job = router["job_id"] if router else None
    if router is None or not job or not any(j.live for j in slurm.query([job]).values()):
        return []
    slurm.cancel([job])
    router["cancelled_at"] = time.time()
    store.save(rec)
    return [job]


def cancel(name: str, store: Store | None = None) -> list[str]:
    """Cancel every live job of the deployment, in any of its runs, its router and jobs found by
    their comment included. Returns the ids cancelled (empty: nothing left)."""
    store = store or Store()
    with store.locked(name):
        rec = store.require(name)
        adopt_live_jobs(store, rec)
        return cancel_runs(store, rec) + cancel_router(store, rec)
