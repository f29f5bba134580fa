"""Every job of a deployment within reach, recorded or not.

A run's record gets each job id right after its sbatch, but the process can die in between
(SIGKILL, the OOM killer, a dropped SSH session, a full disk). Every job carries its deployment
and run in its comment, so the commands that act on a deployment (submit, redeploy, cancel) and
`status` find such jobs and record them before they act: a job is never left running beside a new
run, or beyond the reach of cancel.
"""

from __future__ import annotations

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.records import Record, Run, all_runs, current_run, job_ids, missing_stages, read_handovers
from glm5_hpc.app.router_record import ROUTER, router_id
from glm5_hpc.domain.names import job_comment, job_name


def known_job_ids(rec: Record) -> set[str]:
    """Every job id the record holds: all runs' (handovers included) and the router's."""
    ids = {j for run in all_runs(rec) for j in job_ids(run)}
    ids |= {h["job_id"] for run in all_runs(rec) for h in read_handovers(run)}
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
        router = rec.get(ROUTER)
        if tag == ROUTER and router is not None and not router.get("job_id"):
            router.update(job_id=jid, adopted=True)
            continue
        run = next((r for r in all_runs(rec) if r.get("run_id") == tag), None)
        stage = jname.removeprefix(job_name(name, ""))
        if run is not None and stage in missing_stages(run):
            run["stages"].append({"stage": stage, "job_id": jid, "adopted": True})
            continue
        owner = run or current_run(rec)
        if owner is None:  # a record without runs: keep the job in one, never drop it
            owner = {"run_id": tag, "stages": [], "submission": "unknown: jobs found by their comment"}
            rec.setdefault("runs", []).append(owner)
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
