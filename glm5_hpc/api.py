"""glm5_hpc from Python: a notebook or a script drives deployments without parsing CLI output.

    from glm5_hpc.api import Cluster

    cluster = Cluster("mycluster")            # a profile name, a path, or a Profile
    dep = cluster.submit(name="glm5")         # submits prep-model -> build-wheel -> serve
    status = dep.wait(timeout_s=3600, on_progress=print)
    print(status.phase, dep.endpoint)         # Phase.READY, http://...
    dep.cancel()

Every call returns typed values and prints nothing; failures raise glm5_hpc.errors.Glm5Error
(InputError for bad input, WaitFailedError when a deployment can no longer become healthy).
Heavy modules are imported on first use, so `import glm5_hpc.api` stays cheap. This API drives the
Slurm cluster where it runs (a login node); profiles with an `ssh:` block are for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glm5_hpc.errors import InputError

if TYPE_CHECKING:
    from glm5_hpc.adapters.store import Store
    from glm5_hpc.app.doctor import Check
    from glm5_hpc.app.status import DeploymentStatus
    from glm5_hpc.domain.health import Verdict
    from glm5_hpc.domain.profile import Profile

__all__ = ["Cluster", "Deployment", "Phase", "ProbeResult", "StageStatus", "Status"]


class Phase(StrEnum):
    """The serve job's health phase (separate from the Slurm states of its stages)."""

    WAITING = "waiting"
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    RETIRING = "retiring"
    RETIRED = "retired"
    FAILED = "failed"
    STOPPED = "stopped"
    ENDED = "ended"
    UNREADABLE = "unreadable"  # its record cannot be read: Status.failure names the file


@dataclass(frozen=True)
class StageStatus:
    stage: str
    job_id: str | None
    state: str  # Slurm's: PENDING, RUNNING, COMPLETED, FAILED, ... UNKNOWN; SKIPPED when no job was needed
    node: str
    reason: str
    exit_code: str
    elapsed: str


@dataclass(frozen=True)
class Status:
    name: str
    run_id: str
    phase: Phase
    healthy: bool
    endpoint: str | None  # the serve job's own endpoint
    endpoint_scope: str  # "node": answers on its node only; "cluster": from every node and the login node
    stable_endpoint: str | None  # the router's, with router.enabled
    stages: tuple[StageStatus, ...]
    completion: str
    failure: str  # why it can no longer become healthy ("" while it can)
    details: dict[str, Any]  # everything `glm5_hpc status --json` shows for the deployment

    @classmethod
    def of(cls, st: DeploymentStatus) -> Status:
        doc = st.to_json()
        phase = Phase(st.phase) if st.phase in Phase._value2member_map_ else Phase.WAITING
        stages = tuple(StageStatus(s.stage, s.job_id, s.state, s.node, s.reason, s.exit_code, s.elapsed) for s in st.stages)
        return cls(st.name, st.run_id, phase, st.healthy, st.endpoint, st.endpoint_scope, st.stable_endpoint, stages,
                   st.completion, st.failure, doc)  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    url: str
    verdicts: tuple[Verdict, ...]

    @property
    def ok(self) -> bool:
        return len(self.verdicts) == 3 and all(v.ok for v in self.verdicts)


class Deployment:
    """One named deployment; every method reads or acts on the cluster when called, never before."""

    def __init__(self, name: str, store: Store | None = None) -> None:
        from glm5_hpc.domain.names import check_deployment_name

        check_deployment_name(name)
        self.name = name
        self._store = store

    def __repr__(self) -> str:
        return f"Deployment({self.name!r})"

    def status(self) -> Status:
        from glm5_hpc.app.status import UNREADABLE, status
        from glm5_hpc.errors import StateError

        (st,) = status([self.name], self._store)
        if st.phase == UNREADABLE:
            raise StateError(st.failure)
        return Status.of(st)

    @property
    def endpoint(self) -> str | None:
        """Where to send requests now: the router's stable endpoint when it runs, else the server's."""
        st = self.status()
        return st.stable_endpoint or st.endpoint

    def wait(self, timeout_s: float | None = None, on_progress: Callable[[str], None] | None = None) -> Status:
        """Block until healthy (the full probe ladder passed); WaitFailedError when it cannot become so."""
        from glm5_hpc.app.waiting import wait

        return Status.of(wait(self.name, timeout_s, on_progress or (lambda _line: None), self._store))

    def logs(self, stage: str | None = None, lines: int = 50) -> str:
        from glm5_hpc.app.logs import logs

        out: list[str] = []
        logs(self.name, stage, lines, False, out.append, self._store)
        return "\n".join(out)

    def follow(self, on_text: Callable[[str], None], stage: str | None = None, lines: int = 50) -> None:
        """Pass the stage's log to `on_text` as it grows, until its job ends."""
        from glm5_hpc.app.logs import logs

        logs(self.name, stage, lines, True, on_text, self._store)

    def probe(self) -> ProbeResult:
        from glm5_hpc.app.probe import probe

        url, verdicts = probe(self.name, None, None, self._store)
        return ProbeResult(url, tuple(verdicts))

    def redeploy(self, from_stage: str | None = None, no_downtime: bool = False, profile: str | None = None,
                 timeout_s: float | None = None) -> Deployment:  # fmt: skip
        """Replace the deployment's run (see `glm5_hpc redeploy`). With no_downtime it returns once the
        new run serves (blue/green behind the router); otherwise once the new chain is submitted."""
        if no_downtime:
            from glm5_hpc.app.blue_green import redeploy_no_downtime

            redeploy_no_downtime(self.name, lambda _line: None, profile, from_stage, timeout_s, self._store)
        else:
            from glm5_hpc.app.submit import redeploy

            redeploy(self.name, profile, from_stage, self._store)
        return self

    def cancel(self) -> list[str]:
        """Cancel every live job of the deployment; returns their ids (empty when nothing was left)."""
        from glm5_hpc.app.cancel import cancel

        return cancel(self.name, self._store)


class Cluster:
    """A cluster as one profile describes it."""

    def __init__(self, profile: str | Path | Profile, store: Store | None = None) -> None:
        from glm5_hpc.adapters.resources import load_profile
        from glm5_hpc.domain.profile import Profile

        self.profile = profile if isinstance(profile, Profile) else load_profile(str(profile))
        if self.profile.ssh is not None:
            raise InputError(
                f"profile {self.profile.name} reaches its cluster over SSH ({self.profile.ssh.host}); the Python API runs "
                "where the Slurm commands are: use it on the login node, or the CLI from here"
            )
        self._store = store

    def __repr__(self) -> str:
        return f"Cluster({self.profile.name!r})"

    def submit(self, name: str | None = None, rebuild: bool = False) -> Deployment:
        from glm5_hpc.app.submit import submit

        name = name or self.profile.name
        submit(self.profile, name, self._store, rebuild=rebuild)
        return Deployment(name, self._store)

    def render(self, name: str | None = None) -> dict[str, str]:
        """The files a submit would write, {file name: content}, without submitting."""
        from glm5_hpc.app.submit import prepare

        return prepare(self.profile, name or self.profile.name, "RUN_ID").rendered

    def doctor(self) -> list[Check]:
        from glm5_hpc.adapters.shell import LocalShell
        from glm5_hpc.app.doctor import run_checks

        return run_checks(self.profile, LocalShell())

    def deployments(self) -> list[Deployment]:
        from glm5_hpc.adapters.store import Store

        store = self._store or Store()
        return [Deployment(n, store) for n in store.names()]

    def deployment(self, name: str) -> Deployment:
        from glm5_hpc.adapters.store import Store

        store = self._store or Store()
        store.require(name)
        return Deployment(name, store)
