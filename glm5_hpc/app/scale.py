"""Use case: change the number of replicas of a live deployment (`glm5_hpc scale NAME --replicas M`).

Up: more serve jobs join the current run, each its own replica with its own route; the router
sends them traffic once they pass the full probe ladder. Down: the highest replicas leave the
rotation first (their route files are removed, so the router stops sending them new requests),
drain for router.drain_s, and only then are their jobs cancelled. A later redeploy submits the
profile's serve.replicas again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.adapters.run_files import read_replica_handovers
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.cancel import wait_gone
from glm5_hpc.app.record_repair import adopt_live_jobs
from glm5_hpc.app.submit import replica_entry, stage_submission, submit_replica, with_replicas
from glm5_hpc.domain.names import SERVE
from glm5_hpc.domain.plan import RunPaths
from glm5_hpc.domain.profile import Profile
from glm5_hpc.domain.record import Handover, Record, Replica, Run, current_run, live_replicas, profile_of
from glm5_hpc.errors import InputError


def scale(name: str, replicas: int, report: Callable[[str], None], store: Store | None = None) -> list[str]:
    """Returns the job ids submitted (up) or cancelled (down)."""
    store = store or Store()
    with store.locked(name):
        rec = store.require(name)
        adopt_live_jobs(store, rec)
        run = current_run(rec)
        serve = next((s for s in run["stages"] if s["stage"] == SERVE and s.get("job_id")), None) if run else None
        if run is None or serve is None:
            raise InputError(f"deployment {name!r} has no serve job to scale; glm5_hpc redeploy {name} submits one")
        profile = with_replicas(load_profile(profile_of(rec)), replicas)
        live = live_replicas(run)
        now = 1 + len(live)
        if replicas > now:
            first = max((r["index"] for r in run.get("replicas", [])), default=0) + 1  # indexes are never reused
            return add_replicas(store, rec, run, profile, name, range(first, first + replicas - now), report)
        leaving = live[len(live) - (now - replicas) :] if replicas < now else []
        for r in leaving:
            Path(r["route_file"]).unlink(missing_ok=True)  # out of the rotation: no new request reaches it
            r["removed_at"] = time.time()
            report(f"replica {r['index']}: out of the rotation, draining {profile.router.drain_s:g}s")
        store.save(rec)
        if leaving:
            time.sleep(profile.router.drain_s)
        return _cancel(leaving, read_replica_handovers(run), report)


def add_replicas(store: Store, rec: Record, run: Run, profile: Profile, name: str, indexes: Iterable[int],
                 report: Callable[[str], None]) -> list[str]:  # fmt: skip
    """Submit a serve job for each replica index into `run` (the caller holds the lock); their ids."""
    paths = RunPaths(PurePosixPath(profile.work_dir), name, run["run_id"])
    sub = stage_submission(profile, name, run["run_id"], paths, SERVE, profile.stages.serve, None)
    submitted = []
    for index in indexes:
        entry = replica_entry(paths, index)
        run.setdefault("replicas", []).append(entry)
        store.save(rec)  # intent before action
        entry["job_id"] = job_id = submit_replica(profile, name, paths, sub, index)
        store.save(rec)
        report(f"replica {index}: serve job {job_id} submitted")
        submitted.append(job_id)
    return submitted


def _cancel(leaving: list[Replica], handovers: dict[int, list[Handover]], report: Callable[[str], None]) -> list[str]:
    ids = [j for r in leaving for j in [r["job_id"] or "", *(h["job_id"] for h in handovers.get(r["index"], []))] if j]
    live = [j.job_id for j in slurm.query(ids).values() if j.live]
    if live:
        slurm.cancel(live)
        wait_gone(live)
        report(f"cancelled serve job(s) {', '.join(live)}")
    return live
