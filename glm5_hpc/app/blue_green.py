"""Use case: `redeploy --no-downtime` (blue/green, behind the deployment's router).

The new run is submitted beside the old one, whose jobs keep serving. Its serve job claims the
route once healthy by the full probe ladder; the router moves new requests to it and the old
serve job retires after draining (jobs/watcher.py), and anything of the old run still live after
that is cancelled. If the new run fails, it is cancelled, moved out of the way (kept in the
record under "failed_replacements", so no job id is lost) and the old run stays current: a
failed new job never replaces a healthy old one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.adapters.run_files import read_run_files
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.cancel import cancel_live_jobs
from glm5_hpc.app.record_repair import adopt_live_jobs
from glm5_hpc.app.router_job import ensure_router
from glm5_hpc.app.submit import check_secrets, submit_run
from glm5_hpc.app.waiting import WaitFailedError, wait
from glm5_hpc.domain.record import Record, Run, current_run, job_ids, profile_of
from glm5_hpc.domain.status import DeploymentStatus, status_of
from glm5_hpc.errors import InputError, StateError

RETIRE_MARGIN_S = 60.0  # beyond router.drain_s, for the old serve job to notice the move and end


def _run(rec: Record, run_id: str) -> Run | None:
    return next((r for r in rec.get("runs", []) if r.get("run_id") == run_id), None)


def redeploy_no_downtime(
    name: str, report: Callable[[str], None], profile_name: str | None = None, from_stage: str | None = None,
    timeout_s: float | None = None, store: Store | None = None,
) -> DeploymentStatus:  # fmt: skip
    store = store or Store()
    with store.locked(name):
        rec = store.require(name)
        adopt_live_jobs(store, rec)
        old = current_run(rec)
        profile = load_profile(profile_name or profile_of(rec))
        check_secrets(profile)
        if not profile.router.enabled:
            raise InputError(
                f"redeploy --no-downtime needs router.enabled: true in profile {profile.source or profile.name} "
                "(clients reach the deployment through the router, which moves to the new serve job once it is healthy)"
            )
        if old is None or not status_of(rec, slurm.query(job_ids(old)), read_run_files(rec)).healthy:
            raise StateError(
                f"deployment {name!r} is not healthy now, so there is no downtime to avoid; use glm5_hpc redeploy {name}"
            )
        ensure_router(store, rec, profile, name, keep_route=True)
        new = submit_run(store, rec, profile, name, from_stage=from_stage, skip_prepared=True)
        new["replaces"] = old["run_id"]
        store.save(rec)
    report(f"new run {new['run_id']} submitted beside run {old['run_id']}, which keeps serving")
    try:
        st = wait(name, timeout_s, report)
    except WaitFailedError as exc:
        _abandon(store, name, new["run_id"], str(exc))
        raise WaitFailedError(
            f"the new run {new['run_id']} did not become healthy ({exc}); it was cancelled and run {old['run_id']} keeps serving"
        ) from None
    except KeyboardInterrupt:  # the replacement is not wanted any more: the old run stays current
        report(f"interrupted: cancelling the new run {new['run_id']}; run {old['run_id']} keeps serving")
        _abandon(store, name, new["run_id"], "redeploy --no-downtime was interrupted")
        raise
    serve = st.stage("serve")
    report(f"traffic moved to job {serve.job_id if serve else '?'}; retiring run {old['run_id']}")
    _retire(store, name, old["run_id"], profile.router.drain_s + RETIRE_MARGIN_S)
    return st


def _abandon(store: Store, name: str, run_id: str, why: str) -> None:
    with store.locked(name):
        rec = store.require(name)
        run = _run(rec, run_id)
        if run is None:
            return
        cancel_live_jobs(store, rec, wait=True, run=run)
        rec["runs"].remove(run)
        rec.setdefault("failed_replacements", []).append({**run, "failure": why})
        store.save(rec)


def _retire(store: Store, name: str, run_id: str, grace_s: float) -> None:
    """The old run's serve job ends by itself once it has drained; then whatever of the old run is
    left is cancelled (a successor it queued, or a job still running after the grace)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        run = _run(store.require(name), run_id)
        if run is None:
            return
        if not any(j.live and j.state != "PENDING" for j in slurm.query(job_ids(run)).values()):
            break
        time.sleep(2)
    with store.locked(name):
        rec = store.require(name)
        run = _run(rec, run_id)
        if run is not None:
            cancel_live_jobs(store, rec, wait=True, run=run)
