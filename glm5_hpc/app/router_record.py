"""The router's entry in a deployment record (rec["router"]). Its intent is saved before sbatch and
its job id after; a router job whose id was never recorded (the submitting process died in
between) is found again by its comment and adopted, as stage jobs are."""

from __future__ import annotations

from glm5_hpc.adapters import slurm
from glm5_hpc.domain.names import job_comment, job_name
from glm5_hpc.domain.record import Record

ROUTER = "router"


def router_id(rec: Record) -> str | None:
    router = rec.get("router")
    return router["job_id"] if router else None


def router_unrecorded(rec: Record) -> bool:
    """A router was to be submitted, its id is not recorded, and no one has looked for it yet."""
    router = rec.get("router")
    return router is not None and not router["job_id"] and not router.get("searched")


def adopt_router(rec: Record) -> bool:
    """Record the id of a router job submitted but never recorded; True if the record changed.
    Call it only with the deployment's lock held, so no submission is in progress."""
    if not router_unrecorded(rec):
        return False
    router = rec["router"]
    found = slurm.find_jobs(job_comment(rec["name"], ROUTER), router["submitted_at"])
    ids = sorted((jid for jid, name in found.items() if name == job_name(rec["name"], ROUTER)), key=int)
    router["searched"] = True  # once: found or not, status goes back to one sacct and one squeue
    if ids:
        router["job_id"], router["adopted"] = ids[-1], True
    return True
