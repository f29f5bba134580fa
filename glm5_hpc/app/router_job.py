"""Use case: the deployment's router job (profile `router:`), submitted once and kept across
redeploys, recorded at the deployment level (rec["router"]) before and after sbatch."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import creating_with_umask
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.router_record import ROUTER, adopt_router, router_id
from glm5_hpc.domain.names import job_comment, job_name
from glm5_hpc.domain.plan import RunPaths
from glm5_hpc.domain.profile import Profile, StageResources
from glm5_hpc.domain.record import Record
from glm5_hpc.domain.route import ROUTE_FILE


def ensure_router(store: Store, rec: Record, profile: Profile, name: str, keep_route: bool = False) -> str | None:
    """Submit the router job unless a live one exists; returns its job id (None: no router).
    Unless `keep_route` (a no-downtime redeploy, whose old serve job holds it), the route is
    forgotten: no serve job is live, and a stale holder's id must not outrank new jobs (job ids
    restart when a cluster's controller state is wiped)."""
    if not profile.router.enabled:
        return None
    if not keep_route:  # every replica's route
        deployment_dir = Path(RunPaths(PurePosixPath(profile.work_dir), name, "").deployment_dir)
        for path in deployment_dir.glob("route*.json"):
            if ROUTE_FILE.match(path.name):
                path.unlink(missing_ok=True)
    if adopt_router(rec):
        store.save(rec)
    previous = router_id(rec)
    if previous and any(j.live for j in slurm.query([previous]).values()):
        return previous
    r = profile.router
    paths = RunPaths(PurePosixPath(profile.work_dir), name, "")
    res = StageResources(partition=r.partition or profile.stages.prep_model.partition, time=r.time, cpus=r.cpus, mem=r.mem)
    with creating_with_umask(profile.run_umask):  # its logs and pickles: private unless run_access says group
        folder = Path(paths.deployment_dir) / ROUTER
        folder.mkdir(parents=True, exist_ok=True)
        Path(paths.router_file).unlink(missing_ok=True)  # a dead router's address must not be shown
        rec["router"] = {
            "job_id": None, "submitted_at": time.time(), "router_file": str(paths.router_file), "logs": str(folder),
            "route_file": str(paths.route_file), "previous": previous,
        }  # fmt: skip
        store.save(rec)  # intent before action
        sub = slurm.Submission(
            folder=folder, job_name=job_name(name, ROUTER), comment=job_comment(name, ROUTER), partition=res.partition,
            time_minutes=res.time_minutes, cpus=res.cpus, mem=res.mem, gres=None, account=profile.slurm.account,
            qos=profile.slurm.qos, after_ok=None, requeue=True,
        )  # fmt: skip
        from jobs.router import run_router  # deferred: aiohttp

        job_id = slurm.submit(sub, run_router, str(paths.route_file), str(paths.router_file), r.host, r.port, r.engine, r.nginx,
                              r.cpus)  # fmt: skip
        rec["router"]["job_id"] = job_id
        store.save(rec)
    return job_id
