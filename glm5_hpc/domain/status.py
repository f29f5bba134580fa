"""A deployment's status, derived from its record, Slurm's answers and what its jobs wrote. Pure:
the files come in as a snapshot (adapters/run_files.py reads each once per refresh).

Scheduler state (per stage) and service health (per deployment) are separate fields.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from glm5_hpc.domain.names import SERVE, STAGES
from glm5_hpc.domain.record import (
    Handover,
    HealthDoc,
    Record,
    RouterDoc,
    Run,
    all_runs,
    current_run,
    empty_run,
    job_ids,
    live_replicas,
)
from glm5_hpc.domain.slurm_state import FAILED, TERMINAL, UNKNOWN, JobInfo

OUTCOMES = ("prep", "image", "flashinfer")  # JSON files the stages write into the run dir
ROUTER_STATS = "router-stats.json"  # beside router.json: the router's counts per serve job


class Phase(StrEnum):
    """The serve job's health phase (separate from the Slurm states of its stages)."""

    WAITING = "waiting"
    STARTING = "starting"
    WAITING_FOR_RANKS = "waiting-for-ranks"  # a server across nodes: not every rank has started
    LOADING = "loading"
    HUNG = "hung"  # no progress for health.hang_after_s before ready; the restart policy follows
    READY = "ready"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    RETIRING = "retiring"
    RETIRED = "retired"
    FAILED = "failed"
    STOPPED = "stopped"
    ENDED = "ended"
    UNREADABLE = "unreadable"  # its record cannot be read: failure names the file

    @classmethod
    def of(cls, text: object) -> Phase:
        """The phase a health file names; one this version does not know reads as waiting."""
        return cls._value2member_map_.get(str(text), cls.WAITING)  # type: ignore[return-value]


UNREADABLE = Phase.UNREADABLE


class RunFiles(NamedTuple):
    """What the current run's jobs wrote, as read in one refresh. Never mutated, so the empty
    defaults may be shared."""

    handovers: list[Handover] = []  # noqa: RUF012 - handovers.json (the record's copy may lag)
    health: dict[str, HealthDoc] = {}  # noqa: RUF012 - health file path -> its document
    route: dict[str, Any] = {}  # noqa: RUF012 - route.json: which serve job the router forwards to
    router: RouterDoc = {}  # noqa: RUF012 - router.json: where the router listens
    outcomes: dict[str, dict[str, Any]] = {}  # noqa: RUF012 - prep/image/flashinfer.json not yet in the record
    run_dir_missing: bool = False
    log_tails: dict[str, str] = {}  # noqa: RUF012 - job id -> last lines, for the stages that failed
    replica_handovers: dict[int, list[Handover]] = {}  # noqa: RUF012 - replica i >= 1 -> its handovers-r<i>.json
    replica_routes: dict[int, dict[str, Any]] = {}  # noqa: RUF012 - replica i >= 1 -> its route-r<i>.json
    router_stats: dict[str, Any] = {}  # noqa: RUF012 - router-stats.json: requests in flight and served per serve job


class ReplicaStatus(NamedTuple):
    """One copy of the server (serve.replicas): the serve job speaking for it now."""

    replica: int
    job_id: str | None
    state: str
    node: str = ""
    endpoint: str | None = None
    phase: str = "waiting"
    healthy: bool = False
    reason: str = ""
    in_flight: int | None = None  # as the router last counted (None: no router, or it has not seen this job)
    served: int | None = None


class StageStatus(NamedTuple):
    stage: str
    job_id: str | None
    state: str
    reason: str = ""
    node: str = ""
    exit_code: str = ""
    elapsed: str = ""


class DeploymentStatus:
    """One deployment's status. A plain class, as RunFiles and StageStatus are NamedTuples:
    `glm5_hpc status` starts without importing dataclasses (and inspect)."""

    name: str
    profile: str
    run_id: str
    stages: list[StageStatus]
    submission: str = ""
    endpoint: str | None = None
    endpoint_kind: str = ""
    endpoint_scope: str = ""  # "node": answers on the serve node only (probe and tunnel go through the job); "cluster"
    phase: Phase = Phase.WAITING
    healthy: bool = False
    health_reason: str = ""
    warning: str = ""  # what the serve job reports beside its health (a requeue before the time limit that failed)
    completion: str = ""
    failure: str = ""
    restarts: int = 0  # server restarts inside the serve job
    requeues: int = 0  # times Slurm started the serve job again (node failure, scontrol requeue)
    last_probe: dict[str, Any]  # the newest verdict: rung, ok, detail, at
    runs: int = 0
    recipe: dict[str, Any]  # prep hashes and actions, flashinfer patch state
    health_history: list[dict[str, Any]]
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
    replicas: list[ReplicaStatus]  # every copy of the server, replica 0 (the serve stage) first
    traffic: dict[str, Any]  # through the router (python engine), the last minute: requests, requests_s, p50_ms
    FIELDS = tuple(__annotations__)  # the JSON document's keys, in this order

    def __init__(self, name: str, profile: str, run_id: str, stages: list[StageStatus], **fields: Any) -> None:
        self.name, self.profile, self.run_id, self.stages = name, profile, run_id, stages
        self.last_probe, self.recipe, self.health_history, self.replicas, self.traffic = {}, {}, [], [], {}
        for key, value in fields.items():
            if key not in self.FIELDS[4:]:
                raise TypeError(f"DeploymentStatus has no field {key!r}")
            setattr(self, key, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeploymentStatus) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"DeploymentStatus({self.name!r}, phase={self.phase!r}, run_id={self.run_id!r})"

    def stage(self, name: str) -> StageStatus | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_json(self) -> dict[str, Any]:
        doc = {key: getattr(self, key) for key in self.FIELDS}
        return {**doc, "stages": [s._asdict() for s in self.stages], "replicas": [r._asdict() for r in self.replicas]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeploymentStatus:
        """Back from `to_json` (what `glm5_hpc status --json` prints on a login node)."""
        stages = [StageStatus(**s) for s in doc["stages"]]
        fields = {k: v for k, v in doc.items() if k in cls.FIELDS[4:]}
        fields["replicas"] = [ReplicaStatus(**r) for r in doc.get("replicas", [])]
        return cls(doc["name"], doc["profile"], doc["run_id"], stages, **{**fields, "phase": Phase.of(doc.get("phase"))})


def unreadable(name: str, why: str) -> DeploymentStatus:
    return DeploymentStatus(name, "", "", [], phase=UNREADABLE, failure=why)


def serve_chain(run: Run, handovers: list[Handover] | None = None) -> list[tuple[str, str]]:
    """(job id, health file) of the run's serve job and of each successor that took over from it
    (`handovers`: as the serve jobs last wrote them, when newer than the record's copy)."""
    first = next((s["job_id"] for s in run["stages"] if s["stage"] == SERVE and s.get("job_id")), None)
    chain = [(first, run.get("health_file", ""))] if first else []
    return chain + [(h["job_id"], h.get("health_file", "")) for h in (handovers or run["handovers"])]


def replica_chains(run: Run, files: RunFiles) -> dict[int, list[tuple[str, str]]]:
    """serve_chain of every live replica: replica 0 (the serve stage) and each of live_replicas(run)."""
    chains = {0: serve_chain(run, files.handovers)}
    for r in live_replicas(run):
        first = [(r["job_id"], r["health_file"])] if r["job_id"] else []
        later = files.replica_handovers.get(r["index"], [])
        chains[r["index"]] = first + [(h["job_id"], h.get("health_file", "")) for h in later]
    return chains


def queried_ids(run: Run | None, files: RunFiles) -> list[str]:
    """The job ids a refresh asks Slurm about: the run's, and every successor its serve jobs queued."""
    later = [h["job_id"] for hs in [files.handovers, *files.replica_handovers.values()] for h in hs]
    return list(dict.fromkeys(job_ids(run) + later))


def health_hint(run: Run, files: RunFiles) -> tuple[Any, ...]:
    """The health phases of the run's serve jobs: when one changes, Slurm is worth asking again."""
    return tuple(files.health.get(h, {}).get("phase") for chain in replica_chains(run, files).values() for _, h in chain)


def current_serve(chain: list[tuple[str, str]], infos: dict[str, JobInfo], holder: str | None) -> tuple[str, str] | None:
    """The serve job that speaks for the run: the route holder while it runs, else the newest
    job that has started (unless it has ended and a job queued after it will take over: a
    handover successor, or a fresh job after a rolled-back replacement), else the first."""
    if not chain:
        return None
    state = {j: infos.get(j, JobInfo(j, UNKNOWN)).state for j, _ in chain}
    for job, health in chain:
        if job == holder and state[job] == "RUNNING":
            return job, health
    started = [(j, h) for j, h in chain if state[j] not in ("PENDING", UNKNOWN)]
    if not started:
        return chain[0]
    after = chain[chain.index(started[-1]) + 1 :]
    if state[started[-1][0]] in TERMINAL and after:  # it ended, and a job queued after it will take over
        return after[0]
    return started[-1]


def log_path(logs: str, job_id: str | None) -> PurePosixPath | None:
    return PurePosixPath(logs) / f"{job_id}_0_log.out" if logs and job_id else None


def failed_jobs(run: Run, infos: dict[str, JobInfo]) -> list[str]:
    """The stage jobs whose log tail a failure message shows."""
    return [j for s in run["stages"] if (j := s.get("job_id")) and infos.get(j, JobInfo(j, UNKNOWN)).state in FAILED]


def failure(st: DeploymentStatus, files: RunFiles) -> str:
    """Why the deployment can no longer become healthy ("" while it still can)."""
    for s in st.stages:
        if s.state in FAILED:
            tail = files.log_tails.get(s.job_id or "", "")
            more = f"\n--- last lines of {log_path(st.logs, s.job_id)} ---\n{tail}" if tail else ""
            why = f" ({st.health_reason})" if s.stage == SERVE and st.health_reason else ""  # the watcher's verdict
            return f"stage {s.stage} (job {s.job_id}) ended {s.state}, exit code {s.exit_code or '?'}{why}{more}"
        if s.reason == "DependencyNeverSatisfied":
            return f"stage {s.stage} (job {s.job_id}) can never start: DependencyNeverSatisfied"
    for r in st.replicas[1:]:
        if r.state in FAILED or r.phase in ("unhealthy", "failed"):
            return (
                f"replica {r.replica} (serve job {r.job_id}) is {r.state if r.state in FAILED else r.phase}: {r.reason}".rstrip(
                    ": "
                )
            )
    serve = st.stage(SERVE)
    if serve and serve.state == "COMPLETED":
        return f"serve job {serve.job_id} ended: {st.health_reason or 'the server exited'}"
    if st.phase in ("unhealthy", "failed"):
        return f"server is {st.phase}: {st.health_reason}"
    if st.submission.startswith(("aborted", "interrupted")):
        return f"submission {st.submission}; use glm5_hpc redeploy {st.name}"
    if files.run_dir_missing:
        return (f"run directory {st.run_dir} is missing (deleted?): its jobs can no longer report health or write logs; "
                f"glm5_hpc redeploy {st.name} starts a new run")  # fmt: skip
    return ""


def status_of(rec: Record, infos: dict[str, JobInfo], files: RunFiles) -> DeploymentStatus:
    """A deployment's status from its record, Slurm's answers and its current run's files."""
    run = current_run(rec) or empty_run()
    chain = serve_chain(run, files.handovers)
    holder = files.route.get("job_id") if run.get("route_file") else None
    serving = current_serve(chain, infos, holder)
    stages = []
    for s in sorted(run["stages"], key=lambda s: STAGES.index(s["stage"])):
        if not (job := s.get("job_id")):
            stages.append(StageStatus(s["stage"], None, "SKIPPED", s.get("skipped", "")))
            continue
        job = serving[0] if s["stage"] == SERVE and serving else job
        info = infos.get(job, JobInfo(job, UNKNOWN))
        stages.append(StageStatus(s["stage"], job, info.state, info.reason, info.node, info.exit_code, info.elapsed))
    docs = (("prep", run.get("prep")), ("image", run.get("image")), ("flashinfer", run.get("flashinfer")))
    recipe = {k: v for k, v in docs if v}
    st = DeploymentStatus(
        rec["name"], rec.get("profile", ""), run["run_id"], stages, submission=run.get("submission", ""),
        runs=len(rec["runs"]), recipe=recipe, health_history=[dict(h) for h in run.get("health_history", [])],
        logs=run.get("logs", ""), run_dir=run.get("run_dir", ""), replaces=run.get("replaces", ""),
    )  # fmt: skip
    _health_fields(st, files.health.get(serving[1], {}) if serving and serving[1] else {})
    _router_fields(st, rec, files.router, infos)
    if st.stable_endpoint and isinstance(minute := files.router_stats.get("last_minute"), dict):
        st.traffic = minute
    st.route_job = holder
    st.handovers = len(chain) - 1 if chain else 0
    waiting = [j for j, _ in chain if infos.get(j, JobInfo(j, UNKNOWN)).state == "PENDING"]
    if waiting and waiting[-1] != chain[0][0]:
        info = infos[waiting[-1]]
        st.next_serve = f"job {info.job_id}, PENDING ({info.reason or 'queued'})"
    if holder and holder not in (j for j, _ in chain):
        st.route_run = next((r["run_id"] for r in all_runs(rec) if holder in (j for j, _ in serve_chain(r))), "?")
    st.replicas = _replicas(st, run, files, infos)
    if len(st.replicas) > 1:
        st.healthy = all(r.healthy for r in st.replicas)
    st.failure = failure(st, files)
    return st


def _replicas(st: DeploymentStatus, run: Run, files: RunFiles, infos: dict[str, JobInfo]) -> list[ReplicaStatus]:
    """Every replica's speaking serve job, its health, and the router's counts for it."""
    counts = {str(u.get("job_id")): u for u in files.router_stats.get("replicas", []) if isinstance(u, dict)}
    serve = st.stage(SERVE)
    found = []
    if serve is not None:
        found.append(ReplicaStatus(0, serve.job_id, serve.state, serve.node, st.endpoint, st.phase, st.healthy, st.health_reason))
    for index, chain in replica_chains(run, files).items():
        if index == 0:
            continue
        holder = files.replica_routes.get(index, {}).get("job_id")
        speaking = current_serve(chain, infos, holder)
        if speaking is None:
            found.append(ReplicaStatus(index, None, "PENDING", reason="not submitted yet"))
            continue
        job, health_file = speaking
        info = infos.get(job, JobInfo(job, UNKNOWN))
        health = files.health.get(health_file, {}) if health_file else {}
        mine = bool(health) and health.get("job_id") == job
        phase, endpoint, reason = Phase.WAITING, None, ""
        if info.state == "RUNNING" and mine:
            phase, endpoint = Phase.of(health.get("phase", "waiting")), health.get("endpoint")
            reason = str(health.get("reason", ""))
        elif info.state not in ("PENDING", "RUNNING", UNKNOWN):
            phase, reason = Phase.ENDED, str(health.get("reason", "")) if mine else ""
        elif info.state == "PENDING":
            reason = info.reason
        found.append(ReplicaStatus(index, job, info.state, info.node, endpoint, phase, phase is Phase.READY, reason))
    return [r._replace(in_flight=c.get("in_flight"), served=c.get("served")) if (c := counts.get(r.job_id or "")) else r
            for r in found]  # fmt: skip


def _health_fields(st: DeploymentStatus, health: HealthDoc) -> None:
    """What the speaking serve job's health file says, if it is that job's."""
    serve = st.stage(SERVE)
    if not health or serve is None or health.get("job_id") != serve.job_id:
        if serve is not None and serve.state not in ("PENDING", "RUNNING", UNKNOWN):
            st.phase, st.health_reason = Phase.ENDED, str(health.get("reason", ""))
        return
    st.restarts = int(health.get("restarts", 0))
    st.requeues = int(health.get("requeues", 0))
    st.warning = str(health.get("warning", ""))
    st.last_probe = (health.get("verdicts") or [{}])[-1]
    if serve.state == "RUNNING":
        st.phase = Phase.of(health.get("phase", "waiting"))
        st.endpoint = health.get("endpoint")
        st.endpoint_kind = str(health.get("endpoint_kind", ""))
        st.endpoint_scope = str(health.get("endpoint_scope", ""))
        st.health_reason = str(health.get("reason", ""))
        st.completion = str(health.get("completion", ""))
        st.healthy = st.phase is Phase.READY
    elif serve.state not in ("PENDING", UNKNOWN):
        st.phase, st.health_reason = Phase.ENDED, str(health.get("reason", ""))


def _router_fields(st: DeploymentStatus, rec: Record, where: RouterDoc, infos: dict[str, JobInfo]) -> None:
    router = rec.get("router")
    if router is None or not (job := router["job_id"]):
        return
    st.router_job = job
    if infos.get(job, JobInfo("", UNKNOWN)).state == "RUNNING" and where.get("job_id") == job:
        st.stable_endpoint = where.get("url")
        st.stable_endpoint_scope = str(where.get("scope", ""))
        st.router_node = str(where.get("node", ""))
