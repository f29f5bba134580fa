"""Use case: cancel every live job of a deployment. The stage scripts trap SIGTERM and remove
their containers, so cancelling the jobs is what frees the GPUs."""

from __future__ import annotations

import time

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.records import Record, current_run, job_ids, new_outcomes, set_outcomes
from glm5_hpc.errors import InputError, SlurmError

GONE_TIMEOUT_S = 180.0  # Slurm's KillWait (30 s by default) plus the container's stop timeout, with margin


def cancel_live_jobs(store: Store, rec: Record, wait: bool = False) -> list[str]:
    """scancel the current run's live jobs and record it; with `wait`, return only once Slurm
    reports none of them live, with every stage's final outcome recorded (the caller holds the
    deployment's lock)."""
    run = current_run(rec)
    ids = job_ids(run)
    live = [j.job_id for j in slurm.query(ids).values() if j.live]
    if not live:
        return []
    slurm.cancel(live)
    assert run is not None
    run.setdefault("cancelled", []).append({"at": time.time(), "job_ids": live})
    store.save(rec)
    if wait:
        deadline, delay = time.monotonic() + GONE_TIMEOUT_S, 0.5
        while True:
            infos = slurm.query(ids)
            still = [j.job_id for j in infos.values() if j.live]
            if not still:
                break
            if time.monotonic() > deadline:
                raise SlurmError(f"jobs {', '.join(still)} still live {GONE_TIMEOUT_S:g}s after scancel; check squeue")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        set_outcomes(run, new_outcomes(run, infos))
        store.save(rec)
    return live


def cancel(name: str, store: Store | None = None) -> list[str]:
    """Cancel every live job of the deployment. Returns the ids cancelled (empty: nothing left)."""
    store = store or Store()
    with store.locked(name):
        rec = store.load(name)
        if rec is None:
            raise InputError(f"no deployment named {name!r} (known: {', '.join(store.names()) or 'none'})")
        return cancel_live_jobs(store, rec)
