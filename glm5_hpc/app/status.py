"""Use case: the status of deployments. One sacct and one squeue call per refresh, whatever the
number of deployments and jobs. Scheduler state (per stage) and service health (per deployment)
are separate fields.

Reading status also keeps the record complete, without ever waiting for another command's lock:
jobs of an interrupted submission are adopted by their comment, and what the cluster side
wrote (stage outcomes, prep hashes, flashinfer state, endpoint and health changes) is copied in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glm5_hpc.adapters import slurm
from glm5_hpc.adapters.files import read_json
from glm5_hpc.adapters.store import Store
from glm5_hpc.app.adoption import adopt_interrupted
from glm5_hpc.app.paced_query import PacedQuery
from glm5_hpc.app.records import (
    Record,
    Run,
    all_runs,
    current_run,
    job_ids,
    missing_stages,
    new_outcomes,
    read_handovers,
    set_outcomes,
)
from glm5_hpc.app.router_record import ROUTER, adopt_router, router_id, router_unrecorded
from glm5_hpc.domain.names import SERVE, STAGES
from glm5_hpc.domain.slurm_state import FAILED, UNKNOWN, JobInfo
from glm5_hpc.errors import InputError, StateError

OUTCOMES = ("prep", "image", "flashinfer")  # JSON files the stages write into the run dir
UNREADABLE = "unreadable"  # the phase of a deployment whose record cannot be read (failure says why)


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
    submission: str = ""
    endpoint: str | None = None
    endpoint_kind: str = ""
    endpoint_scope: str = ""  # "node": answers on the serve node only (probe and tunnel go through the job); "cluster"
    phase: str = "waiting"
    healthy: bool = False
    health_reason: str = ""
    completion: str = ""
    failure: str = ""
    restarts: int = 0  # server restarts inside the serve job
    requeues: int = 0  # times Slurm started the serve job again (node failure, scontrol requeue)
    last_probe: dict[str, Any] = field(default_factory=dict)  # the newest verdict: rung, ok, detail, at
    runs: int = 0
    recipe: dict[str, Any] = field(default_factory=dict)  # prep hashes and actions, flashinfer patch state
    health_history: list[dict[str, Any]] = field(default_factory=list)
    logs: str = ""
    run_dir: str = ""
    stable_endpoint: str | None = None  # the router's address, while its job runs (profile router:)
    stable_endpoint_scope: str = ""
    router_job: str | None = None
    router_node: str = ""
    route_job: str | None = None  # the serve job the router forwards to
    route_run: str = ""  # the run of that job, when it is not the current run (a replacement under way or cut off)
    replaces: str = ""  # the run this run is replacing without downtime (redeploy --no-downtime)
    handovers: int = 0  # serve jobs that took over from this run's first one
    next_serve: str = ""  # a queued successor: "job N, PENDING (BeginTime)"

    def stage(self, name: str) -> StageStatus | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def health_hint(run: Run) -> tuple[Any, ...]:
    """The health phases of the run's serve jobs: when one changes, Slurm is worth asking again."""
    return tuple(read_json(Path(h)).get("phase") if h else None for _, h in serve_chain(run))


def serve_chain(run: Run) -> list[tuple[str, str]]:
    """(job id, health file) of the run's serve job and of each successor that took over from it."""
    first = next((s["job_id"] for s in run.get("stages", []) if s["stage"] == SERVE and s.get("job_id")), None)
    chain = [(first, run.get("health_file", ""))] if first else []
    return chain + [(h["job_id"], h.get("health_file", "")) for h in run.get("handovers", [])]


def route_holder(run: Run) -> str | None:
    """The serve job the router forwards to (None without a router)."""
    return read_json(run["route_file"]).get("job_id") if run.get("route_file") else None


def current_serve(run: Run, infos: dict[str, JobInfo], holder: str | None) -> tuple[str, str] | None:
    """The serve job that speaks for the run: the route holder while it runs, else the newest
    job that has started, else the first."""
    chain = serve_chain(run)
    if not chain:
        return None
    state = {j: infos.get(j, JobInfo(j, UNKNOWN)).state for j, _ in chain}
    for job, health in chain:
        if job == holder and state[job] == "RUNNING":
            return job, health
    started = [(j, h) for j, h in chain if state[j] not in ("PENDING", UNKNOWN)]
    return started[-1] if started else chain[0]


def log_path(logs: str, job_id: str | None) -> Path | None:
    return Path(logs) / f"{job_id}_0_log.out" if logs and job_id else None


def log_tail(path: Path | None, lines: int = 15) -> str:
    """The stage's own last lines (submitit's bookkeeping lines left out)."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode(errors="replace")
    return "\n".join([ln for ln in text.splitlines() if not ln.startswith("submitit ")][-lines:])


def failure(st: DeploymentStatus) -> str:
    """Why the deployment can no longer become healthy ("" while it still can)."""
    for s in st.stages:
        if s.state in FAILED:
            path = log_path(st.logs, s.job_id)
            tail = log_tail(path)
            more = f"\n--- last lines of {path} ---\n{tail}" if tail else ""
            return f"stage {s.stage} (job {s.job_id}) ended {s.state}, exit code {s.exit_code or '?'}{more}"
        if s.reason == "DependencyNeverSatisfied":
            return f"stage {s.stage} (job {s.job_id}) can never start: DependencyNeverSatisfied"
    serve = st.stage(SERVE)
    if serve and serve.state == "COMPLETED":
        return f"serve job {serve.job_id} ended: {st.health_reason or 'the server exited'}"
    if st.phase in ("unhealthy", "failed"):
        return f"server is {st.phase}: {st.health_reason}"
    if st.submission.startswith(("aborted", "interrupted")):
        return f"submission {st.submission}; use glm5_hpc redeploy {st.name}"
    if st.run_dir and not Path(st.run_dir).is_dir():
        return (f"run directory {st.run_dir} is missing (deleted?): its jobs can no longer report health or write logs; "
                f"glm5_hpc redeploy {st.name} starts a new run")  # fmt: skip
    return ""


def status_of(rec: Record, infos: dict[str, JobInfo]) -> DeploymentStatus:
    """Pure: a deployment's status from its record, Slurm's answers and the run's health file."""
    run = current_run(rec) or {"run_id": "", "stages": []}
    stages = []
    holder = route_holder(run)
    serving = current_serve(run, infos, holder)
    for s in sorted(run["stages"], key=lambda s: STAGES.index(s["stage"])):
        if not s.get("job_id"):
            stages.append(StageStatus(s["stage"], None, "SKIPPED", s.get("skipped", "")))
            continue
        job = serving[0] if s["stage"] == SERVE and serving else s["job_id"]
        info = infos.get(job, JobInfo(job, UNKNOWN))
        stages.append(StageStatus(s["stage"], job, info.state, info.reason, info.node, info.exit_code, info.elapsed))
    st = DeploymentStatus(
        rec["name"], rec.get("profile", ""), run["run_id"], stages, submission=run.get("submission", ""),
        runs=len(rec.get("runs", [])), recipe={k: run[k] for k in OUTCOMES if k in run},
        health_history=run.get("health_history", []), logs=run.get("logs", ""), run_dir=run.get("run_dir", ""),
    )  # fmt: skip
    health = read_json(Path(serving[1])) if serving and serving[1] else {}
    serve = st.stage(SERVE)
    if health and serve is not None and health.get("job_id") == serve.job_id:
        st.restarts = int(health.get("restarts", 0))
        st.requeues = int(health.get("requeues", 0))
        st.last_probe = (health.get("verdicts") or [{}])[-1]
    if health and serve is not None and serve.state == "RUNNING" and health.get("job_id") == serve.job_id:
        st.phase = str(health.get("phase", "waiting"))
        st.endpoint = health.get("endpoint")
        st.endpoint_kind = str(health.get("endpoint_kind", ""))
        st.endpoint_scope = str(health.get("endpoint_scope", ""))
        st.health_reason = str(health.get("reason", ""))
        st.completion = str(health.get("completion", ""))
        st.healthy = st.phase == "ready"
    elif serve is not None and serve.state not in ("PENDING", "RUNNING", UNKNOWN):
        st.phase = "ended"
        st.health_reason = str(health.get("reason", ""))
    _router_fields(st, rec, run, infos)
    st.route_job = holder
    if holder and holder not in (j for j, _ in serve_chain(run)):
        st.route_run = next((r["run_id"] for r in all_runs(rec) if holder in (j for j, _ in serve_chain(r))), "?")
    st.replaces = str(run.get("replaces", ""))
    st.failure = failure(st)
    return st


def _router_fields(st: DeploymentStatus, rec: Record, run: Run, infos: dict[str, JobInfo]) -> None:
    router = rec.get(ROUTER) or {}
    if router.get("job_id"):
        st.router_job = router["job_id"]
        where = read_json(Path(router.get("router_file", "")))
        if infos.get(router["job_id"], JobInfo("", UNKNOWN)).state == "RUNNING" and where.get("job_id") == router["job_id"]:
            st.stable_endpoint = where.get("url")
            st.stable_endpoint_scope = str(where.get("scope", ""))
            st.router_node = str(where.get("node", ""))
    chain = serve_chain(run)
    st.handovers = len(chain) - 1 if chain else 0
    waiting = [j for j, _ in chain if infos.get(j, JobInfo(j, UNKNOWN)).state == "PENDING"]
    if waiting and chain and waiting[-1] != chain[0][0]:
        info = infos[waiting[-1]]
        st.next_serve = f"job {info.job_id}, PENDING ({info.reason or 'queued'})"


def status(names: list[str] | None = None, store: Store | None = None, query: PacedQuery | None = None) -> list[DeploymentStatus]:
    """Status of the given deployments (all by default). `query` paces Slurm calls across the
    refreshes of a loop (`status --watch`); without it Slurm is asked now."""
    store = store or Store()
    recs, unreadable = [], {}
    for n in names or store.names():
        try:
            recs.append(store.require(n))
        except (StateError, InputError) as exc:  # one bad record is one line; the others still show
            if names and isinstance(exc, InputError):
                raise  # a deployment asked for by name that does not exist
            unreadable[n] = DeploymentStatus(n, "", "", [], phase=UNREADABLE, failure=str(exc))
    for rec in recs:
        _adopt_interrupted(store, rec)
        if router_unrecorded(rec):
            _update_locked(store, rec, adopt_router)
    ids = [j for rec in recs if (run := current_run(rec)) for j in job_ids(run) + [h["job_id"] for h in read_handovers(run)]]
    ids += [j for rec in recs if (j := router_id(rec))]
    if query is None:
        infos = slurm.query(ids)
    else:
        infos = query(ids, tuple(health_hint(run) for rec in recs if (run := current_run(rec))))
    for rec in recs:
        _absorb(store, rec, infos)
    found = {rec["name"]: status_of(_with_handovers(rec), infos) for rec in recs} | unreadable
    return [found[n] for n in names or sorted(found)]


def _with_handovers(rec: Record) -> Record:
    """The record with its current run's handovers as the serve jobs last wrote them (the copy in
    the record lags while another command holds the lock)."""
    run = current_run(rec)
    found = read_handovers(run) if run else []
    if run is None or not found or found == run.get("handovers"):
        return rec
    return {**rec, "runs": [*rec["runs"][:-1], {**run, "handovers": found}]}


def _update_locked(store: Store, rec: Record, change: Callable[[Record], bool]) -> None:
    """Apply `change` to the freshly loaded record and save it, if the lock is free; skipped (never
    waited for) while another command holds it."""
    try:
        with store.locked(rec["name"]):
            fresh = store.load(rec["name"]) or rec
            if not change(fresh):
                return
            store.save(fresh)
            rec.clear()
            rec.update(fresh)
    except StateError:
        return


def _update_run_locked(store: Store, rec: Record, change: Callable[[Run], bool]) -> None:
    """`_update_locked` for the current run, if it is still the current one."""
    run = current_run(rec)
    if run is None:
        return

    def on_run(fresh: Record) -> bool:
        fresh_run = current_run(fresh)
        return fresh_run is not None and fresh_run.get("run_id") == run["run_id"] and change(fresh_run)

    _update_locked(store, rec, on_run)


def _adopt_interrupted(store: Store, rec: Record) -> None:
    """A run still "in progress" whose lock is free was left by a process that died during
    submission (app/adoption.py)."""
    run = current_run(rec)
    if run is None or run.get("submission") != "in progress" or not missing_stages(run):
        return
    _update_run_locked(store, rec, lambda fresh: adopt_interrupted(rec["name"], fresh))


def _absorb(store: Store, rec: Record, infos: dict[str, JobInfo]) -> None:
    """Copy into the record what it lacks: final stage outcomes, the stages' JSON outcomes, and
    changes of the serve job's health phase or endpoint."""
    run = current_run(rec)
    if run is None:
        return

    def pending_changes(r: Run) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if outcomes := new_outcomes(r, infos):
            changes["outcomes"] = outcomes
        for key in OUTCOMES:
            if key not in r and r.get("run_dir") and (doc := read_json(Path(r["run_dir"]) / f"{key}.json")):
                changes[key] = doc
        if (found := read_handovers(r)) and found != r.get("handovers"):
            changes["handovers"] = found
        serving = current_serve(r, infos, route_holder(r))
        health = read_json(Path(serving[1])) if serving and serving[1] else {}
        history = r.get("health_history", [])
        if health.get("phase") and health.get("job_id") in job_ids(r):
            entry = {
                "at": health.get("updated_at"),
                "job_id": health["job_id"],
                "phase": health["phase"],
                "reason": health.get("reason", ""),
                "endpoint": health.get("endpoint"),
            }
            last = history[-1] if history else {}
            if (last.get("job_id"), last.get("phase"), last.get("endpoint")) != (
                entry["job_id"],
                entry["phase"],
                entry["endpoint"],
            ):
                changes["health_history"] = [*history, entry]
        return changes

    if not pending_changes(run):
        return

    def apply(fresh: Run) -> bool:
        changes = pending_changes(fresh)
        if not changes:
            return False
        set_outcomes(fresh, changes.pop("outcomes", {}))
        fresh.update(changes)
        return True

    _update_run_locked(store, rec, apply)
