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
Slurm cluster where it runs (a login node); with a profile that has an `ssh:` block, each call runs
the same glm5_hpc command on that login node (`glm5_hpc remote setup` installs it there) and reads
its JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glm5_hpc.errors import InputError

if TYPE_CHECKING:
    from glm5_hpc.adapters.store import Store
    from glm5_hpc.app.doctor import Check
    from glm5_hpc.app.remote import RemoteCommands
    from glm5_hpc.domain.health import Verdict
    from glm5_hpc.domain.profile import Profile
    from glm5_hpc.domain.status import DeploymentStatus

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


REMOTE_POLL_S = 3.0  # wait() over SSH: how often the login node's status is read


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
    """One named deployment; every method reads or acts on the cluster when called, never before.
    For a profile with `ssh:` each call runs the same command on the login node (`--json`)."""

    def __init__(self, name: str, store: Store | None = None, remote: RemoteCommands | None = None) -> None:
        from glm5_hpc.domain.names import check_deployment_name

        check_deployment_name(name)
        self.name = name
        self._store = store
        self._remote = remote

    def __repr__(self) -> str:
        return f"Deployment({self.name!r})"

    def status(self) -> Status:
        from glm5_hpc.domain.status import UNREADABLE, DeploymentStatus
        from glm5_hpc.errors import StateError

        if self._remote is not None:
            (st,) = [DeploymentStatus.from_json(d) for d in self._remote.json("status", self.name)["deployments"]]
        else:
            from glm5_hpc.app.status import status

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
        from glm5_hpc.app.waiting import WaitFailedError, wait

        report = on_progress or (lambda _line: None)
        if self._remote is None:
            return Status.of(wait(self.name, timeout_s, report, self._store))
        deadline = time.monotonic() + timeout_s if timeout_s else None
        shown = ""
        while True:  # over SSH: the login node's status, every REMOTE_POLL_S
            st = self.status()
            line = f"server: {st.phase.value}" + (f" at {st.endpoint}" if st.endpoint else "")
            if line != shown:
                shown = line
                report(line)
            if st.healthy:
                return st
            if st.failure:
                raise WaitFailedError(st.failure)
            if deadline and time.monotonic() > deadline:
                raise WaitFailedError(f"deployment {self.name!r} not healthy within {timeout_s:g}s (jobs keep running)")
            time.sleep(REMOTE_POLL_S)

    def logs(self, stage: str | None = None, lines: int = 50) -> str:
        if self._remote is not None:
            return self._remote.run("logs", self.name, *([stage] if stage else []), "-n", str(lines)).rstrip("\n")
        from glm5_hpc.app.logs import logs

        out: list[str] = []
        logs(self.name, stage, lines, False, out.append, self._store)
        return "\n".join(out)

    def follow(self, on_text: Callable[[str], None], stage: str | None = None, lines: int = 50) -> None:
        """Pass the stage's log to `on_text` as it grows, until its job ends (where the Slurm commands
        are: over SSH, `glm5_hpc logs -f` streams it)."""
        if self._remote is not None:
            raise InputError(f"follow runs where the Slurm commands are; over SSH use: glm5_hpc logs {self.name} -f --profile P")
        from glm5_hpc.app.logs import logs

        logs(self.name, stage, lines, True, on_text, self._store)

    def probe(self) -> ProbeResult:
        from glm5_hpc.domain.health import Verdict

        if self._remote is not None:
            doc = self._remote.json("probe", self.name, ok=(0, 1))
            return ProbeResult(doc["url"], tuple(Verdict(**v) for v in doc["verdicts"]))
        from glm5_hpc.app.probe import probe

        url, verdicts = probe(self.name, None, None, self._store)
        return ProbeResult(url, tuple(verdicts))

    def redeploy(self, from_stage: str | None = None, no_downtime: bool = False, profile: str | None = None,
                 timeout_s: float | None = None) -> Deployment:  # fmt: skip
        """Replace the deployment's run (see `glm5_hpc redeploy`). With no_downtime it returns once the
        new run serves (blue/green behind the router); otherwise once the new chain is submitted."""
        if self._remote is not None:
            if profile is not None:
                raise InputError("over SSH the deployment is redeployed with its cluster's profile; leave profile out")
            extra = [*(["--from", from_stage] if from_stage else []), *(["--no-downtime"] if no_downtime else []),
                     *(["--timeout", f"{timeout_s:g}"] if timeout_s else [])]  # fmt: skip
            self._remote.run("redeploy", self.name, *extra)
        elif no_downtime:
            from glm5_hpc.app.blue_green import redeploy_no_downtime

            redeploy_no_downtime(self.name, lambda _line: None, profile, from_stage, timeout_s, self._store)
        else:
            from glm5_hpc.app.submit import redeploy

            redeploy(self.name, profile, from_stage, self._store)
        return self

    def cancel(self) -> list[str]:
        """Cancel every live job of the deployment; returns their ids (empty when nothing was left)."""
        if self._remote is not None:
            return list(self._remote.json("cancel", self.name)["cancelled"])
        from glm5_hpc.app.cancel import cancel

        return cancel(self.name, self._store)


class Cluster:
    """A cluster as one profile describes it: where this runs, or its login node over SSH."""

    def __init__(self, profile: str | Path | Profile, store: Store | None = None) -> None:
        from glm5_hpc.adapters.resources import load_profile
        from glm5_hpc.domain.profile import Profile

        self.profile = profile if isinstance(profile, Profile) else load_profile(str(profile))
        self._store = store
        self._remote: RemoteCommands | None = None
        if self.profile.ssh is not None:
            from glm5_hpc.app.remote import RemoteCommands

            self._remote = RemoteCommands(self.profile)

    def __repr__(self) -> str:
        return f"Cluster({self.profile.name!r})"

    def _deployment(self, name: str) -> Deployment:
        return Deployment(name, self._store, self._remote)

    def submit(self, name: str | None = None, rebuild: bool = False) -> Deployment:
        name = name or self.profile.name
        if self._remote is not None:
            self._remote.json("submit", "--name", name, *(["--rebuild"] if rebuild else []))
        else:
            from glm5_hpc.app.submit import submit

            submit(self.profile, name, self._store, rebuild=rebuild)
        return self._deployment(name)

    def render(self, name: str | None = None) -> dict[str, str]:
        """The files a submit would write, {file name: content}, without submitting."""
        if self._remote is not None:
            raise InputError(
                f"over SSH, glm5_hpc render --profile {self.profile.name} shows the scripts the login node would write"
            )
        from glm5_hpc.app.submit import prepare

        return prepare(self.profile, name or self.profile.name, "RUN_ID").rendered

    def doctor(self) -> list[Check]:
        from glm5_hpc.adapters.shell import LocalShell
        from glm5_hpc.app.doctor import run_checks

        return run_checks(self.profile, self._remote.shell if self._remote is not None else LocalShell())

    def deployments(self) -> list[Deployment]:
        if self._remote is not None:
            return [self._deployment(d["name"]) for d in self._remote.json("list")["deployments"]]
        from glm5_hpc.adapters.store import Store

        store = self._store or Store()
        return [Deployment(n, store) for n in store.names()]

    def deployment(self, name: str) -> Deployment:
        if self._remote is not None:
            dep = self._deployment(name)
            dep.status()  # the login node's error when there is no such deployment
            return dep
        from glm5_hpc.adapters.store import Store

        store = self._store or Store()
        store.require(name)
        return Deployment(name, store)
