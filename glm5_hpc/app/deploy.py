"""Use cases: submit a deployment's chain, read its status, wait for it, cancel it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import glm5_hpc
import jobs
from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import write_atomic
from glm5_hpc.adapters.resources import templates
from glm5_hpc.adapters.store import Store
from glm5_hpc.domain.plan import (
    BUILD,
    SERVE,
    STAGES,
    RunPaths,
    StagePlan,
    check_deployment_name,
    job_comment,
    job_name,
    plan_chain,
    wheel_key,
)
from glm5_hpc.domain.profile import Profile
from glm5_hpc.domain.render import RenderContext, render_run
from glm5_hpc.domain.slurm_state import UNKNOWN, JobInfo
from glm5_hpc.domain.watch import WatchSpec
from glm5_hpc.errors import Glm5Error, InputError, SlurmError, StateError
from jobs.stage import run_stage


def git_commit(repo: str, branch: str) -> str:
    """The branch's current commit, pinned at submit time so the build is reproducible."""
    try:
        out = subprocess.run(
            ["git", "ls-remote", "--heads", repo, f"refs/heads/{branch}"], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        raise Glm5Error(f"git ls-remote {repo} timed out after 60s; check network access to the source repository") from None
    sha = out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else ""
    if not sha:
        raise InputError(
            f"branch {branch!r} not found in {repo} (git: {out.stderr.strip()[-300:] or 'no such branch'}); "
            "check recipe.source.repo and recipe.source.branch in the profile"
        )
    return sha


def check_name(name: str) -> None:
    try:
        check_deployment_name(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _tool_packages() -> dict[str, str]:
    return {"glm5_hpc": str(Path(glm5_hpc.__file__).parent), "jobs": str(Path(jobs.__file__).parent)}


def _current_run(rec: dict[str, Any]) -> dict[str, Any] | None:
    return rec["runs"][-1] if rec.get("runs") else None


def _job_ids(run: dict[str, Any] | None) -> list[str]:
    return [s["job_id"] for s in (run or {}).get("stages", []) if s.get("job_id")]


@dataclass(frozen=True)
class Prepared:
    """Everything a submission will do, computed without side effects on the cluster."""

    paths: RunPaths
    plan: list[StagePlan]
    rendered: dict[str, str]
    commit: str
    wheel_key: str
    skipped_build: str  # why there is no build job, or ""


def prepare(profile: Profile, name: str, run_id: str, rebuild: bool = False) -> Prepared:
    """The one path shared by `render` and `submit`: plan the chain and render its scripts."""
    check_name(name)
    source_build = profile.recipe.variant == "source-build"
    commit = git_commit(profile.recipe.source.repo, profile.recipe.source.branch) if source_build else ""
    key = wheel_key(profile, commit) if source_build else ""
    paths = RunPaths(PurePosixPath(profile.work_dir), name, run_id)
    cached = source_build and not rebuild and any(Path(paths.wheel_dir(key)).glob("tensorrt_llm-*.whl"))
    skipped = f"wheel cached ({paths.wheel_dir(key)})" if cached else "" if source_build else "stock variant: no build"
    ctx = RenderContext(name, paths, sys.executable, _tool_packages(), commit, key)
    return Prepared(paths, plan_chain(profile, cached), render_run(profile, ctx, templates()), commit, key, skipped)


def submit(profile: Profile, name: str, store: Store | None = None, rebuild: bool = False) -> dict[str, Any]:
    """Submit prep-model -> [build-wheel] -> serve for deployment `name`. Returns the new run.
    The build is skipped when the wheel cache holds this key, unless `rebuild`."""
    check_name(name)
    store = store or Store()
    with store.locked(name):
        rec = store.load(name) or {"name": name, "runs": []}
        live = [j for j in slurm.query(_job_ids(_current_run(rec))).values() if j.live]
        if live:
            raise StateError(
                f"deployment {name!r} still has jobs in Slurm ({', '.join(j.job_id for j in live)}); "
                f"cancel it first (glm5_hpc cancel {name}) or choose another --name"
            )
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        prepared = prepare(profile, name, run_id, rebuild)
        paths, plan = prepared.paths, prepared.plan
        _write_run_dir(paths, prepared.rendered)
        run: dict[str, Any] = {
            "run_id": run_id,
            "run_dir": str(paths.run_dir),
            "profile": profile.name,
            "profile_file": profile.source,
            "submitted_at": time.time(),
            "commit": prepared.commit,
            "wheel_key": prepared.wheel_key,
            "health_file": str(paths.health_file),
            "logs": str(paths.slurm_logs),
            "stages": [],
        }
        if prepared.skipped_build:
            run["stages"].append({"stage": BUILD, "job_id": None, "skipped": prepared.skipped_build})
        rec.update(profile=profile.name)
        rec["runs"].append(run)
        store.save(rec)  # intent before action: the run id is on disk before any sbatch
        submitted: dict[str, str] = {}
        try:
            for step in plan:
                res = step.resources
                sub = slurm.Submission(
                    folder=Path(paths.slurm_logs),
                    job_name=job_name(name, step.stage),
                    comment=job_comment(name, run_id),
                    partition=res.partition,
                    time_minutes=res.time_minutes,
                    cpus=res.cpus,
                    mem=res.mem,
                    gres=res.gres,
                    account=profile.slurm.account,
                    qos=profile.slurm.qos,
                    after_ok=submitted[step.after] if step.after else None,
                )
                watch = _watch_spec(profile, name, paths) if step.stage == SERVE else None
                job_id = slurm.submit(sub, run_stage, step.stage, str(paths.scripts / f"{step.stage}.sh"), watch)
                submitted[step.stage] = job_id
                run["stages"].append({"stage": step.stage, "job_id": job_id})
                store.save(rec)
        except SlurmError as exc:
            slurm.cancel(list(submitted.values()))
            run["aborted"] = f"submission failed, cancelled {sorted(submitted.values())}: {exc}"
            store.save(rec)
            raise
        run["stages"].sort(key=lambda s: STAGES.index(s["stage"]))
        store.save(rec)
        return run


def _write_run_dir(paths: RunPaths, rendered: dict[str, str]) -> None:
    scripts = Path(paths.scripts)
    scripts.mkdir(parents=True, exist_ok=True)
    Path(paths.slurm_logs).mkdir(parents=True, exist_ok=True)
    Path(paths.work_dir / "wheels").mkdir(parents=True, exist_ok=True)  # mounted into the containers
    for fname, text in rendered.items():
        mode = 0o600 if fname in ("container.env", "env.sh") else (0o755 if fname.endswith(".sh") else 0o644)
        write_atomic(scripts / fname, text.encode(), mode)


def _watch_spec(profile: Profile, name: str, paths: RunPaths) -> WatchSpec:
    return WatchSpec(
        health_file=str(paths.health_file),
        container_binary=profile.container.binary,
        container_prefix=job_name(name, SERVE),
        network=profile.container.network,
        bind_host=profile.serve.host,
        port=profile.serve.port,
        model_id=profile.model_path.name,
        health=profile.health,
    )


# ---------------------------------------------------------------- status


@dataclass
class StageStatus:
    stage: str
    job_id: str | None
    state: str
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    elapsed: str = ""


@dataclass
class DeploymentStatus:
    name: str
    profile: str
    run_id: str
    stages: list[StageStatus]
    endpoint: str | None = None
    endpoint_kind: str = ""
    phase: str = "waiting"
    healthy: bool = False
    health_reason: str = ""
    completion: str = ""
    logs: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)  # prep hashes and actions, flashinfer patch state
    health: dict[str, Any] = field(default_factory=dict, repr=False)

    def stage(self, name: str) -> StageStatus | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("health")
        return doc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_health(run: dict[str, Any]) -> dict[str, Any]:
    return _read_json(Path(run["health_file"]))


OUTCOMES = ("prep", "flashinfer")  # what stages write into the run dir and the record keeps


def _absorb_outcomes(store: Store, rec: dict[str, Any]) -> None:
    """Copy what the stages recorded on the cluster (prep hashes, flashinfer state) into the
    deployment record, once. Skipped, not waited for, while another command holds the lock."""
    run = _current_run(rec)
    if run is None or not run.get("run_dir"):
        return
    new = {k: doc for k in OUTCOMES if k not in run and (doc := _read_json(Path(run["run_dir"]) / f"{k}.json"))}
    if not new:
        return
    try:
        with store.locked(rec["name"]):
            fresh = store.load(rec["name"]) or rec
            fresh_run = _current_run(fresh)
            if fresh_run is not None and fresh_run.get("run_id") == run["run_id"]:
                fresh_run.update(new)
                store.save(fresh)
                run.update(new)
    except StateError:
        return


def _status_of(rec: dict[str, Any], infos: dict[str, JobInfo]) -> DeploymentStatus:
    run = _current_run(rec) or {"run_id": "", "stages": []}
    stages = []
    for s in run["stages"]:
        if not s.get("job_id"):
            stages.append(StageStatus(s["stage"], None, "SKIPPED", s.get("skipped", "")))
            continue
        info = infos.get(s["job_id"], JobInfo(s["job_id"], UNKNOWN))
        stages.append(StageStatus(s["stage"], s["job_id"], info.state, info.reason, info.node, info.exit_code, info.elapsed))
    st = DeploymentStatus(
        rec["name"],
        rec.get("profile", ""),
        run["run_id"],
        stages,
        logs=run.get("logs", ""),
        recipe={k: run[k] for k in OUTCOMES if k in run},
    )
    health = read_health(run) if run.get("health_file") else {}
    serve = st.stage(SERVE)
    serve_live = serve is not None and serve.state == "RUNNING" and health.get("job_id") == serve.job_id
    if health and serve_live:
        st.health = health
        st.phase = str(health.get("phase", "waiting"))
        st.endpoint = health.get("endpoint")
        st.endpoint_kind = str(health.get("endpoint_kind", ""))
        st.health_reason = str(health.get("reason", ""))
        st.completion = str(health.get("completion", ""))
        st.healthy = st.phase == "ready"
    elif serve is not None and serve.state not in ("PENDING", "RUNNING", UNKNOWN):
        st.phase = "ended"
        st.health_reason = str(health.get("reason", "")) if health else ""
    if run.get("aborted"):
        st.health_reason = run["aborted"]
    return st


def status(names: list[str] | None = None, store: Store | None = None) -> list[DeploymentStatus]:
    """Status of the given deployments (all by default): one sacct and one squeue call in total."""
    store = store or Store()
    recs = []
    for n in names or store.names():
        rec = store.load(n)
        if rec is None:
            raise InputError(f"no deployment named {n!r} (known: {', '.join(store.names()) or 'none'})")
        recs.append(rec)
    ids = [j for rec in recs for j in _job_ids(_current_run(rec))]
    infos = slurm.query(ids)
    for rec in recs:
        _absorb_outcomes(store, rec)
    return [_status_of(rec, infos) for rec in recs]


def log_path(st: DeploymentStatus, stage: str) -> Path | None:
    s = st.stage(stage)
    return Path(st.logs) / f"{s.job_id}_0_log.out" if s and s.job_id and st.logs else None


def log_tail(path: Path | None, lines: int = 15) -> str:
    """The stage's own last lines (submitit's bookkeeping lines left out)."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode(errors="replace")
    return "\n".join([ln for ln in text.splitlines() if not ln.startswith("submitit ")][-lines:])


# ---------------------------------------------------------------- wait


class WaitFailedError(Glm5Error):
    pass


def failure(st: DeploymentStatus) -> str | None:
    """Why the deployment can no longer become healthy, or None while it still can."""
    for s in st.stages:
        if s.state in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"):
            tail = log_tail(log_path(st, s.stage))
            more = f"\n--- last lines of {log_path(st, s.stage)} ---\n{tail}" if tail else ""
            return f"stage {s.stage} (job {s.job_id}) ended {s.state}, exit code {s.exit_code or '?'}{more}"
        if s.reason == "DependencyNeverSatisfied":
            return f"stage {s.stage} (job {s.job_id}) can never start: DependencyNeverSatisfied"
    serve = st.stage(SERVE)
    if serve and serve.state == "COMPLETED":
        return f"serve job {serve.job_id} ended: {st.health_reason or 'the server exited'}"
    if st.phase in ("unhealthy", "failed"):
        return f"server is {st.phase}: {st.health_reason}"
    return None


def wait(
    name: str,
    timeout_s: float | None,
    report: Callable[[str], None],
    store: Store | None = None,
    max_query_interval_s: float = 5.0,
) -> DeploymentStatus:
    """Block until healthy (returns) or failed (raises WaitFailedError). Slurm is queried with backoff
    (1, 2, 4 ... max_query_interval_s s); the health file, which costs Slurm nothing, every 0.25 s."""
    store = store or Store()
    rec = store.load(name)
    if rec is None:
        raise InputError(f"no deployment named {name!r}")
    deadline = time.monotonic() + timeout_s if timeout_s else None
    interval, next_query = 1.0, 0.0
    infos: dict[str, JobInfo] = {}
    seen: dict[str, str] = {}
    warmup_shown = ""
    while True:
        now = time.monotonic()
        if now >= next_query:
            new = slurm.query(_job_ids(_current_run(rec)))
            changed = {k: (v.state, v.reason) for k, v in new.items()} != {k: (v.state, v.reason) for k, v in infos.items()}
            infos = new
            interval = 1.0 if changed else min(interval * 2, max_query_interval_s)
            next_query = now + interval
        st = _status_of(rec, infos)
        for s in st.stages:
            line = (
                f"{s.stage}: {s.state}"
                + (f" ({s.reason})" if s.reason and s.state != "RUNNING" else "")
                + (f" job {s.job_id} on {s.node}" if s.node else (f" job {s.job_id}" if s.job_id else ""))
            )
            if seen.get(s.stage) != line:
                seen[s.stage] = line
                report(line)
        if seen.get("health") != st.phase and st.stage(SERVE) and st.stage(SERVE).state == "RUNNING":  # type: ignore[union-attr]
            seen["health"] = st.phase
            report(f"server: {st.phase}" + (f" at {st.endpoint}" if st.endpoint else ""))
        if st.phase == "loading":
            progress = _warmup_progress(log_tail(log_path(st, SERVE), 3))
            if progress and progress != warmup_shown:
                warmup_shown = progress
                report(f"server: {progress}")
        if st.healthy:
            return st
        why = failure(st)
        if why:
            raise WaitFailedError(why)
        if deadline and time.monotonic() > deadline:
            raise WaitFailedError(
                f"deployment {name!r} not healthy within --timeout {timeout_s:g}s (jobs keep running; see glm5_hpc status)"
            )
        time.sleep(0.25)


def _warmup_progress(tail: str) -> str:
    """The CUDA-graph warmup countdown, for display only (never to decide anything)."""
    for line in reversed(tail.splitlines()):
        if "CUDA graph warmup for batch size=" in line:
            return "warming up, batch size " + line.split("batch size=", 1)[1].split(",", 1)[0]
        if "Creating CUDA graph instances" in line:
            return "warmup started"
    return ""


# ---------------------------------------------------------------- cancel


def cancel(name: str, store: Store | None = None) -> list[str]:
    """Cancel every live job of the deployment. Returns the ids cancelled (empty: nothing left)."""
    store = store or Store()
    with store.locked(name):
        rec = store.load(name)
        if rec is None:
            raise InputError(f"no deployment named {name!r} (known: {', '.join(store.names()) or 'none'})")
        run = _current_run(rec)
        live = [j.job_id for j in slurm.query(_job_ids(run)).values() if j.live]
        if live:
            slurm.cancel(live)
            assert run is not None
            run.setdefault("cancelled", []).append({"at": time.time(), "job_ids": live})
            store.save(rec)
        return live
