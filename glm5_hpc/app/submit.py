"""Use cases: submit a new deployment's chain, and redeploy an existing one.

Both hold the deployment's lock from the first record write to the last, so a concurrent command
on the same deployment gets a clear error, and an unlocked run still "in progress" means the
submitting process died (status then adopts its jobs by their comment).
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import glm5_hpc
import jobs
from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import creating_with_umask, umask, write_atomic
from glm5_hpc.adapters.git import git_commit
from glm5_hpc.adapters.node_facts import checkpoint_facts
from glm5_hpc.adapters.resources import load_profile, templates
from glm5_hpc.adapters.secrets import check_env_secrets
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.cancel import cancel_runs, live_jobs
from glm5_hpc.app.prep import prep_model
from glm5_hpc.app.record_repair import adopt_live_jobs
from glm5_hpc.app.router_job import ensure_router
from glm5_hpc.domain.model_prep import Edits
from glm5_hpc.domain.names import BUILD, SERVE, STAGES, check_deployment_name, job_comment, job_name
from glm5_hpc.domain.plan import RunPaths, StagePlan, plan_chain, wheel_key
from glm5_hpc.domain.profile import Profile, StageResources
from glm5_hpc.domain.record import Record, Replica, Run, new_record, profile_of
from glm5_hpc.domain.render import RenderContext, render_run
from glm5_hpc.domain.watch import WatchSpec
from glm5_hpc.errors import InputError, LiveJobsError, SlurmError
from jobs.handover import HandoverPlan
from jobs.stage import run_stage


def _tool_packages() -> dict[str, str]:
    return {"glm5_hpc": str(Path(glm5_hpc.__file__).parent), "jobs": str(Path(jobs.__file__).parent)}


def _checkpoint_prepared(profile: Profile) -> bool:
    edits = Edits(**profile.model.edits.model_dump())
    return not prep_model(Path(profile.model.path), edits, "check").changes_needed


def _precision(profile: Profile) -> str:
    """The checkpoint's precision where the serve config depends on it (moe_backend auto, MTP)."""
    precision = profile.model.precision
    if precision == "auto" and (profile.serve.moe_backend == "auto" or profile.serve.mtp_layers):
        precision = checkpoint_facts(Path(profile.model.path))[0]
    if profile.serve.mtp_layers and precision == "nvfp4":
        raise InputError(f"serve.mtp_layers: {profile.model.path} is an NVFP4 checkpoint, and NVIDIA's GLM-5 guide "
                         "does not support MTP with it; remove serve.mtp_layers")  # fmt: skip
    return "" if precision == "auto" else precision


@dataclass(frozen=True)
class Prepared:
    """Everything a submission will do, computed without side effects on the cluster."""

    paths: RunPaths
    plan: list[StagePlan]
    rendered: dict[str, str]
    commit: str
    wheel_key: str


def prepare(profile: Profile, name: str, run_id: str, from_stage: str | None = None, skip_prepared: bool = False) -> Prepared:
    """The one path shared by `render`, `submit` and `redeploy`: plan the chain and render its scripts."""
    check_deployment_name(name)
    source_build = profile.recipe.variant == "source-build"
    commit = git_commit(profile.recipe.source.repo, profile.recipe.source.branch) if source_build else ""
    key = wheel_key(profile, commit) if source_build else ""
    paths = RunPaths(PurePosixPath(profile.work_dir), name, run_id)
    cached = source_build and any(Path(paths.wheel_dir(key)).glob("tensorrt_llm-*.whl"))
    prep_done = skip_prepared and _checkpoint_prepared(profile)
    plan = plan_chain(profile, cached, prep_done, from_stage)
    ctx = RenderContext(name, paths, sys.executable, _tool_packages(), commit, key, _precision(profile))
    return Prepared(paths, plan, render_run(profile, ctx, templates()), commit, key)


def check_secrets(profile: Profile) -> None:
    """Before anything is cancelled or submitted: secrets the job will read from its environment are set."""
    sources = {f"container.secrets.{k}": v for k, v in profile.container.secrets.items()}
    if profile.gateway.enabled and profile.gateway.api_key is not None:
        sources["gateway.api_key"] = profile.gateway.api_key
    check_env_secrets(sources)


def with_replicas(profile: Profile, replicas: int | None) -> Profile:
    """The profile with serve.replicas set (submit --replicas, scale)."""
    if replicas is None or replicas == profile.serve.replicas:
        return profile
    if replicas > 1 and not profile.router.enabled:
        raise InputError(f"{replicas} replicas need router.enabled in {profile.source or profile.name}: the router is the "
                         "one endpoint that spreads requests over them")  # fmt: skip
    return profile.model_copy(update={"serve": profile.serve.model_copy(update={"replicas": replicas})})


def submit(profile: Profile, name: str, store: Store | None = None, rebuild: bool = False) -> Run:
    """Submit prep-model -> [build-wheel] -> serve for a deployment with nothing running (the serve
    stage once per replica)."""
    check_secrets(profile)
    store = store or Store()
    with store.locked(name):
        rec = store.load(name) or new_record(name)
        adopt_live_jobs(store, rec)
        live = sorted(live_jobs(rec), key=int)
        if live:
            raise LiveJobsError(name, live)
        ensure_router(store, rec, profile, name)
        return submit_run(store, rec, profile, name, from_stage=BUILD if rebuild else None, skip_prepared=False)


def redeploy(name: str, profile_name: str | None = None, from_stage: str | None = None, store: Store | None = None) -> Run:
    """Replace a deployment's run: cancel its live jobs (and so its containers), then submit only
    what is needed: serve alone when the checkpoint is prepared and the wheel is cached. The new
    chain never depends on old job ids (Slurm treats purged ones as satisfied)."""
    store = store or Store()
    with store.locked(name):
        rec = store.require(name)
        profile = load_profile(profile_name or profile_of(rec))
        check_secrets(profile)
        adopt_live_jobs(store, rec)
        cancel_runs(store, rec, wait=True)
        ensure_router(store, rec, profile, name)
        return submit_run(store, rec, profile, name, from_stage=from_stage, skip_prepared=True)


def submit_run(store: Store, rec: Record, profile: Profile, name: str, from_stage: str | None, skip_prepared: bool) -> Run:
    """Submit a new run of the deployment, recording each job id as soon as sbatch returns."""
    with creating_with_umask(profile.run_umask):
        return _submit_run(store, rec, profile, name, from_stage, skip_prepared)


def _submit_run(store: Store, rec: Record, profile: Profile, name: str, from_stage: str | None, skip_prepared: bool) -> Run:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    prepared = prepare(profile, name, run_id, from_stage, skip_prepared)
    paths = prepared.paths
    _write_run_dir(paths, prepared.rendered)
    run: Run = {
        "run_id": run_id, "run_dir": str(paths.run_dir), "profile": profile.name, "profile_file": profile.source,
        "submitted_at": time.time(), "commit": prepared.commit, "wheel_key": prepared.wheel_key,
        "health_file": str(paths.health_file), "logs": str(paths.slurm_logs),
        "handovers_file": str(paths.handovers_file), "route_file": str(paths.route_file) if profile.router.enabled else "",
        "planned": [s.stage for s in prepared.plan if not s.skipped], "handovers": [],
        "stages": [{"stage": s.stage, "job_id": None, "skipped": s.skipped} for s in prepared.plan if s.skipped],
        "submission": "in progress",
    }  # fmt: skip
    if profile.serve.replicas > 1:
        run["replicas"] = [replica_entry(paths, i) for i in range(1, profile.serve.replicas)]
    rec["profile"] = profile.name
    rec["runs"].append(run)
    store.save(rec)  # intent before action: the run id is on disk before any sbatch
    submitted: dict[str, str] = {}
    try:
        for step in prepared.plan:
            if step.skipped:
                continue
            assert step.resources is not None
            serve = step.stage == SERVE
            after_ok = submitted[step.after] if step.after else None
            sub = stage_submission(profile, name, run_id, paths, step.stage, step.resources, after_ok)
            if serve:
                job_id = submit_replica(profile, name, paths, sub, 0)
            else:
                job_id = slurm.submit(sub, run_stage, step.stage, str(paths.scripts / f"{step.stage}.sh"))
            submitted[step.stage] = job_id
            run["stages"].append({"stage": step.stage, "job_id": job_id})
            store.save(rec)
            for replica in run.get("replicas", []) if serve else []:
                replica["job_id"] = submitted[f"replica {replica['index']}"] = submit_replica(
                    profile, name, paths, sub, replica["index"]
                )
                store.save(rec)
    except SlurmError as exc:
        slurm.cancel(list(submitted.values()))
        run["submission"] = f"aborted: sbatch failed, cancelled {sorted(submitted.values())}: {exc}"
        store.save(rec)
        raise
    run["stages"].sort(key=lambda s: STAGES.index(s["stage"]))
    run["submission"] = "complete"
    store.save(rec)
    return run


def _write_run_dir(paths: RunPaths, rendered: dict[str, str]) -> None:
    scripts = Path(paths.scripts)
    scripts.mkdir(parents=True, exist_ok=True)
    Path(paths.slurm_logs).mkdir(parents=True, exist_ok=True)
    Path(paths.work_dir / "wheels").mkdir(parents=True, exist_ok=True)  # mounted into the containers
    for fname, text in rendered.items():
        mode = 0o600 if fname in ("container.env", "env.sh") else (0o777 if fname.endswith(".sh") else 0o666) & ~umask()
        write_atomic(scripts / fname, text.encode(), mode)


def replica_entry(paths: RunPaths, index: int) -> Replica:
    return {
        "index": index, "job_id": None, "health_file": str(paths.replica_health_file(index)),
        "handovers_file": str(paths.replica_handovers_file(index)), "route_file": str(paths.replica_route_file(index)),
    }  # fmt: skip


def stage_submission(profile: Profile, name: str, run_id: str, paths: RunPaths, stage: str, res: StageResources,
                     after_ok: str | None) -> slurm.Submission:  # fmt: skip
    """A stage's sbatch settings. Serve jobs are requeueable with the restart policy or requeue handovers."""
    serve = stage == SERVE
    return slurm.Submission(
        folder=Path(paths.slurm_logs), job_name=job_name(name, stage), comment=job_comment(name, run_id),
        partition=res.partition, time_minutes=res.time_minutes, cpus=res.cpus, mem=res.mem, gres=res.gres,
        account=profile.slurm.account, qos=profile.slurm.qos, after_ok=after_ok,
        requeue=serve and (profile.health.restart == "restart" or profile.handover.mode == "requeue"),
        nodelist=res.nodelist, exclude=res.exclude, nodes=res.nodes, ntasks_per_node=profile.ranks_per_node if serve else 1,
    )  # fmt: skip


def submit_replica(profile: Profile, name: str, paths: RunPaths, sub: slurm.Submission, replica: int) -> str:
    """sbatch one serve job: replica `replica` of the run, with its own health, handover and route files."""
    watch = _watch_spec(profile, name, paths, replica)
    handover = None
    if profile.handover.mode == "overlap":  # the successor starts without waiting for this chain
        handover = HandoverPlan(sub._replace(after_ok=None), profile.handover.lead_s, str(paths.replica_handovers_file(replica)))
    sources = dict(profile.container.secrets)  # where to read them, not their values
    return slurm.submit(sub, run_stage, SERVE, str(paths.scripts / f"{SERVE}.sh"), watch, sources, handover)


def _watch_spec(profile: Profile, name: str, paths: RunPaths, replica: int = 0) -> WatchSpec:
    return WatchSpec(
        health_file=str(paths.replica_health_file(replica)), container_binary=profile.container.binary,
        container_prefix=job_name(name, SERVE), network=profile.container.network,
        bind_host=str(profile.serve.host), port=profile.serve.port, model_id=profile.model_path.name,
        health=profile.health, publish=profile.container.publish, gateway=profile.gateway,
        route_file=str(paths.replica_route_file(replica)) if profile.router.enabled else "", drain_s=profile.router.drain_s,
        replica=replica, ranks=profile.ranks_per_node * profile.stages.serve.nodes, ranks_dir=str(paths.ranks_dir),
        metrics_dir=str(paths.metrics_dir),
        requeue_lead_s=profile.handover.lead_s if profile.handover.mode == "requeue" else 0,
    )  # fmt: skip
