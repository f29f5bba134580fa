"""The deployment record and the files a run's jobs write, as types: one place that says what
every key is. Records are JSON (adapters/store.py); the jobs' files are read by adapters/run_files.py.

A record holds every run of the deployment, newest last. A run lists its planned stages before
any sbatch, then each stage's job id as soon as sbatch returns, so a job is never forgotten.

Schema history (`migrate` upgrades on read; the next save writes the current schema):
  1  the first schema.
  2  a run may hold `adopted` (jobs found by their comment that no stage accounts for) and
     `replaces` (redeploy --no-downtime); `stages`, `planned` and `handovers` are always present.
  3  a run may hold `replicas`: the serve jobs of replicas 1 .. N-1 (replica 0 is the serve stage).
     A glm5_hpc that reads only schema 2 would not see their jobs, so it refuses the record.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from glm5_hpc.domain.bench import BenchResult
from glm5_hpc.domain.slurm_state import JobInfo

SCHEMA = 3


class Outcome(TypedDict):
    """A stage's final Slurm state, copied in once its job has ended."""

    state: str
    exit_code: str
    elapsed: str
    node: str


class StageEntry(TypedDict):
    stage: str  # prep-model, build-wheel, serve
    job_id: str | None  # None: skipped
    skipped: NotRequired[str]  # why no job was needed
    adopted: NotRequired[bool]  # found by its comment after the submitting process died
    outcome: NotRequired[Outcome]


class Handover(TypedDict):
    """A successor a serve job queued before its time limit (jobs/handover.py writes the list)."""

    job_id: str
    after: NotRequired[str]
    generation: NotRequired[int]
    begin_at: NotRequired[float]
    health_file: NotRequired[str]


class Replica(TypedDict):
    """A copy of the server beyond the first (serve.replicas): its own serve job, health file,
    handovers and route file. Replica 0 is the run's serve stage with the run's own files."""

    index: int
    job_id: str | None  # None: planned, its sbatch not returned yet
    health_file: str
    handovers_file: str
    route_file: str
    removed_at: NotRequired[float]  # glm5_hpc scale took it out (its jobs cancelled after draining)


class AdoptedJob(TypedDict):
    job_id: str
    job_name: str
    comment: str


class Cancellation(TypedDict):
    at: float
    job_ids: list[str]


class HealthChange(TypedDict):
    at: float | None
    job_id: str
    phase: str
    reason: str
    endpoint: str | None


class Run(TypedDict):
    run_id: str
    stages: list[StageEntry]
    planned: list[str]  # the stages to submit, written before the first sbatch
    handovers: list[Handover]
    submission: NotRequired[str]  # in progress, complete, complete (jobs adopted), aborted: ..., interrupted: ...
    run_dir: NotRequired[str]
    profile: NotRequired[str]
    profile_file: NotRequired[str]  # absolute path of the profile's file
    submitted_at: NotRequired[float]
    commit: NotRequired[str]
    wheel_key: NotRequired[str]
    health_file: NotRequired[str]
    logs: NotRequired[str]
    handovers_file: NotRequired[str]
    route_file: NotRequired[str]  # "" without a router
    adopted: NotRequired[list[AdoptedJob]]
    cancelled: NotRequired[list[Cancellation]]
    health_history: NotRequired[list[HealthChange]]
    prep: NotRequired[dict[str, Any]]  # the stages' own JSON outcomes (prep.json, image.json, flashinfer.json)
    image: NotRequired[dict[str, Any]]
    flashinfer: NotRequired[dict[str, Any]]
    replaces: NotRequired[str]  # the run this one replaces without downtime
    failure: NotRequired[str]  # in failed_replacements: why it was abandoned
    cleaned_at: NotRequired[float]  # glm5_hpc cleanup removed its directory
    replicas: NotRequired[list[Replica]]  # replicas 1 .. N-1, in order (schema 3)
    benchmarks: NotRequired[list[BenchResult]]  # glm5_hpc bench runs against this run's endpoint, oldest first


class RouterEntry(TypedDict):
    job_id: str | None
    submitted_at: float
    router_file: str
    logs: str
    route_file: str
    previous: NotRequired[str | None]
    searched: NotRequired[bool]
    adopted: NotRequired[bool]
    cancelled_at: NotRequired[float]


class Record(TypedDict):
    schema: int
    name: str
    runs: list[Run]
    profile: NotRequired[str]
    router: NotRequired[RouterEntry]
    failed_replacements: NotRequired[list[Run]]


class HealthDoc(TypedDict, total=False):
    """health.json, written by the serve job's supervisor and watcher."""

    job_id: str
    phase: str
    reason: str
    started_at: float
    updated_at: float
    ready_at: float
    restarts: int
    requeues: int
    verdicts: list[dict[str, Any]]
    endpoint: str | None
    endpoint_kind: str
    endpoint_scope: str
    node: str
    completion: str
    route: str


class RouterDoc(TypedDict, total=False):
    """router.json, written by the router job: where it listens."""

    job_id: str
    url: str
    node: str
    host: str
    scope: str
    at: float


class RecordShapeError(ValueError):
    """Not a deployment record of a schema this glm5_hpc reads."""


def migrate(doc: Any, name: str) -> Record:
    """The record of deployment `name` in the current schema, from any earlier one. Pure."""
    if not isinstance(doc, dict):
        raise RecordShapeError("it is not a JSON object")
    schema = doc.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise RecordShapeError(f"it has no valid schema number ({schema!r})")
    if schema > SCHEMA:
        raise RecordShapeError(f"it has schema {schema}, written by a newer glm5_hpc; this one reads up to {SCHEMA}")
    runs = doc.get("runs")
    if doc.get("name") != name or not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise RecordShapeError(f"it is not a record of deployment {name!r} (its name or its runs are wrong)")
    for run in [*runs, *(doc.get("failed_replacements") or [])]:
        if not isinstance(run, dict) or not isinstance(run.get("stages", []), list):
            raise RecordShapeError("a run's stages are not a list")
        run.setdefault("stages", [])
        run.setdefault("planned", [s["stage"] for s in run["stages"] if s.get("job_id")])
        run.setdefault("handovers", [])
    doc["schema"] = SCHEMA
    return doc  # type: ignore[return-value]  # checked above, key by key where code relies on it


def new_record(name: str) -> Record:
    return {"schema": SCHEMA, "name": name, "runs": []}


def empty_run() -> Run:
    """What a record without runs shows."""
    return {"run_id": "", "stages": [], "planned": [], "handovers": []}


def current_run(rec: Record) -> Run | None:
    runs = rec.get("runs") or []
    return runs[-1] if runs else None


def profile_of(rec: Record) -> str:
    """The profile the current run was submitted with (its file), else the record's profile name."""
    run = current_run(rec)
    return (run.get("profile_file") if run else None) or rec.get("profile", "")


def all_runs(rec: Record) -> list[Run]:
    """The runs, then the replacements that failed (kept so that no job id is lost)."""
    return [*rec.get("runs", []), *rec.get("failed_replacements", [])]


def job_ids(run: Run | None) -> list[str]:
    """Every job of the run: its stages', the serve jobs that took over by handover, and jobs
    found by their comment that no stage accounts for."""
    if run is None:
        return []
    return (
        [j for s in run["stages"] if (j := s.get("job_id"))]
        + [h["job_id"] for h in run.get("handovers", [])]
        + [j for r in run.get("replicas", []) if (j := r["job_id"])]
        + [a["job_id"] for a in run.get("adopted", [])]
    )


def live_replicas(run: Run) -> list[Replica]:
    """Replicas 1 .. N-1 that scale has not taken out."""
    return [r for r in run.get("replicas", []) if "removed_at" not in r]


def missing_stages(run: Run) -> list[str]:
    """Planned stages with no recorded job: the submission stopped between sbatch and the record."""
    have = {s["stage"] for s in run["stages"]}
    return [stage for stage in run.get("planned", []) if stage not in have]


def new_outcomes(run: Run, infos: dict[str, JobInfo]) -> dict[str, Outcome]:
    """{stage: outcome} for stages whose job has ended and whose outcome is not yet recorded."""
    return {
        s["stage"]: {"state": i.state, "exit_code": i.exit_code, "elapsed": i.elapsed, "node": i.node}
        for s in run["stages"]
        if (i := infos.get(s.get("job_id") or "")) is not None and i.terminal and "outcome" not in s
    }


def set_outcomes(run: Run, outcomes: dict[str, Outcome]) -> None:
    for s in run["stages"]:
        if s["stage"] in outcomes:
            s["outcome"] = outcomes[s["stage"]]
