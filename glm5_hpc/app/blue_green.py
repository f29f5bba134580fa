"""Use case: `redeploy --no-downtime` (blue/green, behind the deployment's router).

The new run is submitted beside the old one, whose jobs keep serving. Its serve job claims the
route once healthy by the full probe ladder; the router moves new requests to it and the old
serve job retires after draining (jobs/watcher.py), and anything of the old run still live after
that is cancelled. If the new run fails, it is cancelled, moved out of the way (kept in the
record under "failed_replacements", so no job id is lost) and the old run stays current: a
failed new job never replaces a healthy old one.

With several replicas (serve.replicas, or an old run that has them) the replacement rolls: the
new run starts with replica 0 alone, and each further replica is submitted once the ones before
it are healthy. Each new replica takes over its slot's route, so the old replica of that slot
retires; at most one extra replica runs at any time. When no node is free for the extra one (its
job pends for a node for SURGE_WAIT_S), an old replica is taken out first (out of the rotation,
drained, cancelled) and the new one starts on its node: never fewer than N-1 healthy replicas.
If a new replica fails, the new run is abandoned as above and each old slot whose server already
retired gets a fresh serve job of the old run (recorded as a successor in its handovers file),
which takes its route back once healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import read_json, read_json_list, write_json_atomic
from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.adapters.run_files import read_handovers, read_replica_handovers, read_run_files, run_job_ids
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.cancel import cancel_live_jobs, wait_gone
from glm5_hpc.app.record_repair import adopt_live_jobs
from glm5_hpc.app.router_job import ensure_router
from glm5_hpc.app.scale import add_replicas
from glm5_hpc.app.submit import check_secrets, stage_submission, submit_replica, submit_run, with_replicas
from glm5_hpc.app.waiting import WaitFailedError, wait
from glm5_hpc.domain.names import SERVE
from glm5_hpc.domain.plan import RunPaths
from glm5_hpc.domain.record import Record, Run, current_run, job_ids, live_replicas, profile_of
from glm5_hpc.domain.route import NO_NODE_REASONS, slot_to_free
from glm5_hpc.domain.status import DeploymentStatus, RunFiles, queried_ids, replica_chains, status_of
from glm5_hpc.errors import InputError, SlurmError, StateError

RETIRE_MARGIN_S = 60.0  # beyond router.drain_s, for the old serve job to notice the move and end
SURGE_WAIT_S = 10.0  # a new replica pending this long for want of a node: an old one makes room


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
        replicas = profile.serve.replicas
        rolling = replicas > 1 or bool(live_replicas(old))
        new = submit_run(store, rec, with_replicas(profile, 1), name, from_stage=from_stage, skip_prepared=True)
        new["replaces"] = old["run_id"]
        store.save(rec)
    report(f"new run {new['run_id']} submitted beside run {old['run_id']}, which keeps serving"
           + (f"; {replicas} replica(s), one at a time" if rolling else ""))  # fmt: skip
    room = _MakeRoom(store, name, old["run_id"], profile.router.drain_s, report) if rolling else None
    try:
        st = wait(name, timeout_s, report, on_status=room)
        for index in range(1, replicas):
            with store.locked(name):
                rec = store.require(name)
                run = _run(rec, new["run_id"])
                if run is None:
                    raise StateError(f"run {new['run_id']} left the record of {name!r} during the redeploy")
                add_replicas(store, rec, run, profile, name, [index], report)
            if room is not None:
                room.filling = index
            st = wait(name, timeout_s, report, on_status=room)
    except (WaitFailedError, SlurmError) as exc:
        _abandon(store, name, new["run_id"], str(exc))
        restored = _restore(store, name, old["run_id"], timeout_s, report) if rolling else ""
        raise WaitFailedError(
            f"the new run {new['run_id']} did not become healthy ({exc}); it was cancelled and run {old['run_id']} "
            f"keeps serving{restored}"
        ) from None
    except KeyboardInterrupt:  # the replacement is not wanted any more: the old run stays current
        report(f"interrupted: cancelling the new run {new['run_id']}; run {old['run_id']} keeps serving")
        _abandon(store, name, new["run_id"], "redeploy --no-downtime was interrupted")
        if rolling:
            _restore(store, name, old["run_id"], timeout_s, report)
        raise
    serve = st.stage("serve")
    report(f"traffic moved to job {serve.job_id if serve else '?'}; retiring run {old['run_id']}")
    for r in live_replicas(old):  # slots the new run does not have: out of the rotation before they end
        if r["index"] >= replicas:
            Path(r["route_file"]).unlink(missing_ok=True)
    _retire(store, name, old["run_id"], profile.router.drain_s + RETIRE_MARGIN_S)
    return st


class _MakeRoom:
    """Watches the rolling wait: when the new replica for slot `filling` pends for want of a node
    for SURGE_WAIT_S, one old replica leaves the rotation, drains and is cancelled, so that the new
    one starts on its node (domain/route.py::slot_to_free picks it; never the last one serving).
    The rollback (_restore) gives such a slot a fresh serve job like any retired one."""

    def __init__(self, store: Store, name: str, old_run_id: str, drain_s: float, report: Callable[[str], None]) -> None:
        self.store, self.name, self.old_run_id, self.drain_s, self.report = store, name, old_run_id, drain_s, report
        self.filling = 0
        self.since: float | None = None
        self.made_for: set[int] = set()  # at most one old replica out per new one: never below N-1

    def __call__(self, st: DeploymentStatus) -> None:
        state, reason, job_id = _slot_job(st, self.filling)
        if state != "PENDING" or reason not in NO_NODE_REASONS or self.filling in self.made_for:
            self.since = None
            return
        self.since = self.since or time.monotonic()
        if time.monotonic() - self.since < SURGE_WAIT_S:
            return
        self.since = None
        with self.store.locked(self.name):
            old = _run(self.store.require(self.name), self.old_run_id)
            if old is None:
                return
            chains = replica_chains(old, RunFiles(handovers=read_handovers(old), replica_handovers=read_replica_handovers(old)))
            infos = slurm.query([j for chain in chains.values() for j, _ in chain])
            live = {i: [j for j, _ in chain if infos.get(j) is not None and infos[j].live] for i, chain in chains.items()}
            serving = {i for i, ids in live.items() if any(infos[j].state == "RUNNING" for j in ids)}
            slot = slot_to_free(self.filling, serving, sum(r.healthy for r in st.replicas))
            if slot is None:
                return
            self.made_for.add(self.filling)
            routes = {0: old.get("route_file", "")} | {r["index"]: r["route_file"] for r in live_replicas(old)}
            route = routes[slot]
            if route and read_json(route).get("job_id") in live[slot]:
                Path(route).unlink(missing_ok=True)  # out of the rotation: no new request reaches it
        self.report(f"no node is free for job {job_id} ({reason}): replica {slot} of run {self.old_run_id} makes room, "
                    f"out of the rotation, draining {self.drain_s:g}s")  # fmt: skip
        time.sleep(self.drain_s)
        slurm.cancel(live[slot])
        wait_gone(live[slot])
        self.report(f"cancelled serve job(s) {', '.join(live[slot])} of replica {slot}")


def _slot_job(st: DeploymentStatus, index: int) -> tuple[str, str, str]:
    """(Slurm state, pending reason, job id) of the new run's serve job for replica `index`."""
    if index == 0:
        serve = st.stage(SERVE)
        return (serve.state, serve.reason, serve.job_id or "") if serve else ("", "", "")
    r = next((r for r in st.replicas if r.replica == index), None)
    return (r.state, r.reason, r.job_id or "") if r else ("", "", "")


def _abandon(store: Store, name: str, run_id: str, why: str) -> None:
    """Cancel the replacement and keep it under failed_replacements. Routes its serve jobs already
    hold (a rolling replacement's first replicas) are given up first and drained, so no request
    in flight is cut off."""
    with store.locked(name):
        rec = store.require(name)
        run = _run(rec, run_id)
        if run is None:
            return
        ids = set(run_job_ids(run))
        held = [p for p in [run.get("route_file", ""), *(r["route_file"] for r in run.get("replicas", []))]
                if p and read_json(p).get("job_id") in ids]  # fmt: skip
        for path in held:
            Path(path).unlink(missing_ok=True)
        if held:
            time.sleep(load_profile(run.get("profile_file") or profile_of(rec)).router.drain_s)
        cancel_live_jobs(store, rec, wait=True, run=run)
        rec["runs"].remove(run)
        rec.setdefault("failed_replacements", []).append({**run, "failure": why})
        store.save(rec)


def _restore(store: Store, name: str, run_id: str, timeout_s: float | None, report: Callable[[str], None]) -> str:
    """After a failed rolling replacement: give each slot of the (again current) old run whose
    server has retired a fresh serve job of that run, and wait until the run is healthy again."""
    with store.locked(name):
        rec = store.require(name)
        run = _run(rec, run_id)
        if run is None or run is not current_run(rec):
            return ""
        profile = load_profile(profile_of(rec))
        files = read_run_files(rec)
        infos = slurm.query(queried_ids(run, files))
        paths = RunPaths(PurePosixPath(profile.work_dir), name, run_id)
        sub = stage_submission(profile, name, run_id, paths, SERVE, profile.stages.serve, None)
        entries = {0: run.get("handovers_file", "")} | {r["index"]: r["handovers_file"] for r in live_replicas(run)}
        restored = []
        for index, chain in replica_chains(run, files).items():
            if not chain or any(infos.get(j) is not None and infos[j].live for j, _ in chain):
                continue
            job_id = submit_replica(profile, name, paths, sub, index)
            entry = {"job_id": job_id, "after": chain[-1][0], "health_file": str(paths.replica_health_file(index))}
            write_json_atomic(Path(entries[index]), [*read_json_list(entries[index]), entry])
            report(f"replica {index} of run {run_id}: its server had retired; serve job {job_id} takes its place")
            restored.append(job_id)
    if not restored:
        return ""
    try:
        wait(name, timeout_s, report)
    except WaitFailedError as exc:
        return f"; its retired replicas were resubmitted ({', '.join(restored)}) and did not become healthy: {exc}"
    return f"; its retired replicas were resubmitted ({', '.join(restored)}) and serve again"


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
