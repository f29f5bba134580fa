"""Keeping deployment records complete: every job within reach, recorded or not, and what the
jobs wrote copied in.

A run's record gets each job id right after its sbatch, but the process can die in between
(SIGKILL, the OOM killer, a dropped SSH session, a full disk). Every job carries its deployment
and run in its comment, so the commands that act on a deployment (submit, redeploy, cancel) and
`status` find such jobs and record them before they act: a job is never left running beside a new
run, or beyond the reach of cancel.

`status` repairs too, but never waits for another command's lock: it adopts the jobs of an
interrupted submission and copies in what the cluster side wrote (stage outcomes, prep hashes,
flashinfer state, handovers, endpoint and health changes) only when the lock is free.
"""

from __future__ import annotations

from collections.abc import Callable

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.run_files import run_job_ids
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.router_record import ROUTER, adopt_router, router_id, router_unrecorded
from glm5_hpc.domain.names import job_comment, job_name
from glm5_hpc.domain.record import (
    HealthChange,
    Record,
    Run,
    all_runs,
    current_run,
    job_ids,
    missing_stages,
    new_outcomes,
    set_outcomes,
)
from glm5_hpc.domain.slurm_state import JobInfo
from glm5_hpc.domain.status import RunFiles, current_serve, serve_chain
from glm5_hpc.errors import StateError


def known_job_ids(rec: Record) -> set[str]:
    """Every job id the record holds: all runs' (handovers included) and the router's."""
    ids = {j for run in all_runs(rec) for j in run_job_ids(run)}
    return ids | ({router} if (router := router_id(rec)) else set())


def adopt_live_jobs(store: Store, rec: Record) -> list[str]:
    """Record every job in the queue that carries the deployment's comment and that the record
    lacks; returns their ids. Call it with the deployment's lock held (no submission in progress)."""
    name = rec["name"]
    prefix = job_comment(name, "")
    known = known_job_ids(rec)
    found = {j: v for j, v in slurm.live_jobs_with_comment_prefix(prefix).items() if j not in known}
    for jid, (jname, comment) in sorted(found.items(), key=lambda item: int(item[0].split("_")[0])):
        tag = comment.removeprefix(prefix)
        router = rec.get("router")
        if tag == ROUTER and router is not None and not router["job_id"]:
            router["job_id"], router["adopted"] = jid, True
            continue
        run = next((r for r in all_runs(rec) if r.get("run_id") == tag), None)
        stage = jname.removeprefix(job_name(name, ""))
        if run is not None and stage in missing_stages(run):
            run["stages"].append({"stage": stage, "job_id": jid, "adopted": True})
            continue
        owner = run or current_run(rec)
        if owner is None:  # a record without runs: keep the job in one, never drop it
            owner = {"run_id": tag, "stages": [], "planned": [], "handovers": [], "submission": "found by their comment"}
            rec["runs"].append(owner)
        owner.setdefault("adopted", []).append({"job_id": jid, "job_name": jname, "comment": comment})
    run = current_run(rec)
    finished = run is not None and adopt_interrupted(name, run)
    if found or finished:
        store.save(rec)
    return sorted(found)


def adopt_interrupted(name: str, run: Run) -> bool:
    """A run still "in progress" while no one holds the lock was left by a process that died during
    submission: find its missing stages' jobs by their comment (in the queue or accounted) and
    settle its submission state; nothing is resubmitted. True if the run changed."""
    if run.get("submission") != "in progress":
        return False
    if missing := missing_stages(run):
        found = slurm.find_jobs(job_comment(name, run["run_id"]), run["submitted_at"])
        by_name = {jname: jid for jid, jname in found.items()}
        for stage in missing:
            if job_name(name, stage) in by_name:
                run["stages"].append({"stage": stage, "job_id": by_name[job_name(name, stage)], "adopted": True})
    never = missing_stages(run)
    run["submission"] = f"interrupted: {', '.join(never)} never submitted" if never else "complete (jobs adopted)"
    return True


def update_if_free(store: Store, rec: Record, change: Callable[[Record], bool]) -> None:
    """Apply `change` to the freshly loaded record and save it, if the lock is free; skipped (never
    waited for) while another command holds it. `rec` becomes the saved record."""
    try:
        with store.locked(rec["name"]):
            fresh = store.load(rec["name"]) or rec
            if not change(fresh):
                return
            store.save(fresh)
            rec.clear()  # type: ignore[attr-defined]  # a TypedDict is a dict at run time
            rec.update(fresh)
    except StateError:
        return


def update_run_if_free(store: Store, rec: Record, change: Callable[[Run], bool]) -> None:
    """`update_if_free` for the current run, if it is still the current one."""
    run = current_run(rec)
    if run is None:
        return

    def on_run(fresh: Record) -> bool:
        fresh_run = current_run(fresh)
        return fresh_run is not None and fresh_run["run_id"] == run["run_id"] and change(fresh_run)

    update_if_free(store, rec, on_run)


def repair_unlocked(store: Store, rec: Record) -> None:
    """What `status` repairs before it asks Slurm, without waiting for a lock: a run left "in
    progress" by a process that died during submission, and a router job whose id was never recorded."""
    run = current_run(rec)
    if run is not None and run.get("submission") == "in progress" and missing_stages(run):
        update_run_if_free(store, rec, lambda fresh: adopt_interrupted(rec["name"], fresh))
    if router_unrecorded(rec):
        update_if_free(store, rec, adopt_router)


def absorb(store: Store, rec: Record, infos: dict[str, JobInfo], files: RunFiles) -> None:
    """Copy into the record what it lacks: final stage outcomes, the stages' JSON outcomes, the
    handovers the serve jobs wrote, and changes of the serve job's health phase or endpoint."""
    run = current_run(rec)
    if run is not None and _absorbed(run, infos, files, dry_run=True):
        update_run_if_free(store, rec, lambda fresh: _absorbed(fresh, infos, files, dry_run=False))


def _absorbed(run: Run, infos: dict[str, JobInfo], files: RunFiles, dry_run: bool) -> bool:
    """Whether `run` lacks something the snapshot has; unless `dry_run`, copy it in."""
    outcomes = new_outcomes(run, infos)
    docs = {k: v for k, v in files.outcomes.items() if k not in run}
    handovers = files.handovers if files.handovers and files.handovers != run["handovers"] else None
    chain = serve_chain(run, files.handovers)
    serving = current_serve(chain, infos, files.route.get("job_id") if run.get("route_file") else None)
    health = files.health.get(serving[1], {}) if serving and serving[1] else {}
    history = run.get("health_history", [])
    entry: HealthChange | None = None
    if (phase := health.get("phase")) and (job := health.get("job_id")) in {j for j, _ in chain} | set(job_ids(run)):
        entry = {"at": health.get("updated_at"), "job_id": str(job), "phase": phase, "reason": health.get("reason", ""),
                 "endpoint": health.get("endpoint")}  # fmt: skip
        last = history[-1] if history else None
        if last is not None and (last["job_id"], last["phase"], last["endpoint"]) == (job, phase, entry["endpoint"]):
            entry = None
    changed = bool(outcomes or docs or handovers or entry)
    if dry_run or not changed:
        return changed
    set_outcomes(run, outcomes)
    for key, doc in docs.items():
        run[key] = doc  # type: ignore[literal-required]  # one of OUTCOMES
    if handovers is not None:
        run["handovers"] = handovers
    if entry is not None:
        run["health_history"] = [*history, entry]
    return True
