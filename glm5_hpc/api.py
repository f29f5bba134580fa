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
its JSON; that command, on the login node, drives its Slurm directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from glm5_hpc.domain.status import DeploymentStatus as Status
from glm5_hpc.domain.status import Phase, StageStatus
from glm5_hpc.errors import InputError

if TYPE_CHECKING:
    from glm5_hpc.adapters.store import Store
    from glm5_hpc.app.doctor import Check
    from glm5_hpc.app.remote import RemoteCommands
    from glm5_hpc.domain.bench import BenchPlan, BenchResult
    from glm5_hpc.domain.health import Verdict
    from glm5_hpc.domain.profile import Profile
    from glm5_hpc.domain.record import StageEntry

__all__ = ["Cluster", "Deployment", "Phase", "ProbeResult", "StageStatus", "Status", "Submitted", "bench", "probe"]

REMOTE_POLL_S = 3.0  # wait() over SSH: how often the login node's status is read
WATCH_MAX_QUERY_S = 30.0  # Cluster.watch: Slurm is asked at most this far apart while nothing changes


class ProbeResult(NamedTuple):
    url: str
    verdicts: tuple[Verdict, ...]

    @property
    def ok(self) -> bool:
        return len(self.verdicts) == 3 and all(v.ok for v in self.verdicts)


class Submitted(NamedTuple):
    """A chain just submitted: its run and each stage's job id (None: skipped, nothing to do)."""

    run_id: str
    stages: list[StageEntry]


def probe(url: str, model: str | None = None) -> ProbeResult:
    """The probe ladder (health, models, completion) once against any OpenAI-compatible server."""
    from glm5_hpc.app.probe import probe as run_ladder

    probed, verdicts = run_ladder(None, url, model)
    return ProbeResult(probed, tuple(verdicts))


def bench(url: str, model: str | None, plan: BenchPlan, **options: Any) -> BenchResult:
    """A serving benchmark of any OpenAI-compatible server by AIPerf, from here (see `glm5_hpc bench`).
    options: tokenizer, aiperf, plot, out_dir, report (a callable for progress lines)."""
    from glm5_hpc.app.bench import bench as run_bench

    return run_bench(None, plan, url=url, model=model, **options)


class Deployment:
    """One named deployment; every method reads or acts on the cluster when called, never before.
    For a profile with `ssh:` each call runs the same command on the login node (`--json`)."""

    def __init__(self, name: str, store: Store | None = None, remote: RemoteCommands | None = None) -> None:
        from glm5_hpc.domain.names import check_deployment_name

        check_deployment_name(name)
        self.name = name
        self.submitted: Submitted | None = None  # the chain this object last submitted (submit, redeploy)
        self._store = store
        self._remote = remote

    def __repr__(self) -> str:
        return f"Deployment({self.name!r})"

    def status(self) -> Status:
        from glm5_hpc.errors import StateError

        if self._remote is not None:
            (st,) = [Status.from_json(d) for d in self._remote.json("status", self.name)["deployments"]]
        else:
            from glm5_hpc.app.status import status

            (st,) = status([self.name], self._store)
        if st.phase is Phase.UNREADABLE:
            raise StateError(st.failure)
        return st

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
            return wait(self.name, timeout_s, report, self._store)
        deadline = time.monotonic() + timeout_s if timeout_s else None
        shown = ""
        while True:  # over SSH: the login node's status, every REMOTE_POLL_S
            st = self.status()
            line = f"server: {st.phase}" + (f" at {st.endpoint}" if st.endpoint else "")
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

    def probe(self, url: str | None = None, model: str | None = None) -> ProbeResult:
        """The probe ladder once, with the deployment's health settings, against its endpoint (or `url`)."""
        if self._remote is not None:
            from glm5_hpc.domain.health import Verdict

            extra = [*(["--url", url] if url else []), *(["--model", model] if model else [])]
            doc = self._remote.json("probe", self.name, *extra, ok=(0, 1))
            return ProbeResult(doc["url"], tuple(Verdict(**v) for v in doc["verdicts"]))
        from glm5_hpc.app.probe import probe as run_ladder

        probed, verdicts = run_ladder(self.name, url, model, self._store)
        return ProbeResult(probed, tuple(verdicts))

    def bench(self, plan: BenchPlan, **options: Any) -> BenchResult:
        """A serving benchmark of the deployment's endpoint by AIPerf (see `glm5_hpc bench`); the result
        is kept in its record. options: url, model, tokenizer, aiperf, plot, out_dir, report."""
        if self._remote is not None:
            from glm5_hpc.app.remote import bench_argv

            return self._remote.json("bench", self.name, *bench_argv(plan, options), ok=(0, 1))  # type: ignore[no-any-return]
        from glm5_hpc.app.bench import bench as run_bench

        return run_bench(self.name, plan, store=self._store, **options)

    def benchmark(self, ref: str) -> BenchResult:
        """A recorded benchmark of this deployment by its id (or a result.json file)."""
        if self._remote is not None:
            doc = self._remote.json("bench", self.name, "--compare", ref, ref)
            return doc["a"]  # type: ignore[no-any-return]
        from glm5_hpc.adapters.store import Store
        from glm5_hpc.app.bench import find

        return find(self._store or Store(), self.name, ref)

    def redeploy(self, from_stage: str | None = None, no_downtime: bool = False, profile: str | None = None,
                 timeout_s: float | None = None, on_progress: Callable[[str], None] | None = None) -> Deployment:  # fmt: skip
        """Replace the deployment's run (see `glm5_hpc redeploy`). With no_downtime it returns once the
        new run serves (blue/green behind the router); otherwise once the new chain is submitted
        (`submitted` holds it)."""
        if self._remote is not None:
            if profile is not None:
                raise InputError("over SSH the deployment is redeployed with its cluster's profile; leave profile out")
            extra = [*(["--from", from_stage] if from_stage else []), *(["--no-downtime"] if no_downtime else []),
                     *(["--timeout", f"{timeout_s:g}"] if timeout_s else [])]  # fmt: skip
            if no_downtime:
                self._remote.run("redeploy", self.name, *extra)
            else:
                self._remember(self._remote.json("redeploy", self.name, *extra))
        elif no_downtime:
            from glm5_hpc.app.blue_green import redeploy_no_downtime

            redeploy_no_downtime(self.name, on_progress or (lambda _line: None), profile, from_stage, timeout_s, self._store)
        else:
            from glm5_hpc.app.submit import redeploy

            self._remember(redeploy(self.name, profile, from_stage, self._store))
        return self

    def _remember(self, run: Mapping[str, Any]) -> None:
        self.submitted = Submitted(run["run_id"], list(run["stages"]))

    def scale(self, replicas: int, on_progress: Callable[[str], None] | None = None) -> list[str]:
        """Change the number of replicas of the current run: the ids of the serve jobs submitted (up)
        or cancelled after draining (down)."""
        if self._remote is not None:
            return list(self._remote.json("scale", self.name, "--replicas", str(replicas))["jobs"])
        from glm5_hpc.app.scale import scale

        return scale(self.name, replicas, on_progress or (lambda _line: None), self._store)

    def cancel(self) -> list[str]:
        """Cancel every live job of the deployment; returns their ids (empty when nothing was left)."""
        if self._remote is not None:
            return list(self._remote.json("cancel", self.name)["cancelled"])
        from glm5_hpc.app.cancel import cancel

        return cancel(self.name, self._store)


class Cluster:
    """A cluster as one profile describes it: where this runs, or its login node over SSH. Without a
    profile, the cluster where this runs, for the deployments already recorded (each keeps the
    profile it was submitted with); submitting needs one."""

    def __init__(self, profile: str | Path | Profile | None = None, store: Store | None = None) -> None:
        self.profile: Profile | None = None
        if isinstance(profile, str | Path):  # the profile module (pydantic) is imported only when one is given
            from glm5_hpc.adapters.resources import load_profile

            self.profile = load_profile(str(profile))
        else:
            self.profile = profile
        self._store = store
        self._remote: RemoteCommands | None = None
        from glm5_hpc.adapters.login_node import on_login_node

        if self.profile is not None and self.profile.ssh is not None and not on_login_node():
            from glm5_hpc.app.remote import RemoteCommands

            self._remote = RemoteCommands(self.profile)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the SSH connection to the login node, if one was opened."""
        if self._remote is not None:
            self._remote.shell.close()

    @property
    def where(self) -> str:
        """Where the Slurm commands run: "this machine" or the login node's user@host:port."""
        if self._remote is not None:
            return self._remote.shell.where
        from glm5_hpc.adapters.shell import LocalShell

        return LocalShell.where

    def __repr__(self) -> str:
        return f"Cluster({self.profile.name if self.profile else None!r})"

    def _deployment(self, name: str) -> Deployment:
        return Deployment(name, self._store, self._remote)

    def _needs_profile(self, what: str) -> Profile:
        if self.profile is None:
            raise InputError(f"{what} needs a profile: Cluster(PROFILE), a name in cluster_profiles/ or a path")
        return self.profile

    def submit(self, name: str | None = None, rebuild: bool = False, replicas: int | None = None) -> Deployment:
        """Submit the chain for a new deployment (LiveJobsError when it has live jobs already);
        `replicas` overrides the profile's serve.replicas."""
        profile = self._needs_profile("submit")
        dep = self._deployment(name or profile.name)
        if self._remote is not None:
            extra = [*(["--rebuild"] if rebuild else []), *(["--replicas", str(replicas)] if replicas else [])]
            dep._remember(self._remote.json("submit", "--name", dep.name, *extra))
        else:
            from glm5_hpc.app.submit import submit, with_replicas

            dep._remember(submit(with_replicas(profile, replicas), dep.name, self._store, rebuild=rebuild))
        return dep

    def render(self, name: str | None = None) -> dict[str, str]:
        """The files a submit would write, {file name: content}, without submitting."""
        profile = self._needs_profile("render")
        if self._remote is not None:
            raise InputError(f"over SSH, glm5_hpc render --profile {profile.name} shows the scripts the login node would write")
        from glm5_hpc.app.submit import prepare

        return prepare(profile, name or profile.name, "RUN_ID").rendered

    def doctor(self) -> list[Check]:
        from glm5_hpc.adapters.shell import LocalShell
        from glm5_hpc.app.doctor import run_checks

        profile = self._needs_profile("doctor")
        return run_checks(profile, self._remote.shell if self._remote is not None else LocalShell())

    def status(self, names: list[str] | None = None) -> list[Status]:
        """Every deployment's status (or those named), from one Slurm query. An unreadable record is
        an entry with phase UNREADABLE whose failure names the file; a missing name is an InputError."""
        if self._remote is not None:
            return [Status.from_json(d) for d in self._remote.json("status", *(names or []))["deployments"]]
        from glm5_hpc.app.status import status

        return status(names or None, self._store)

    def watch(self, names: list[str] | None = None, interval_s: float = 5.0) -> Iterator[tuple[list[Status], float]]:
        """(statuses, when Slurm was last asked) every interval_s, for ever. Health files are read at
        every refresh; Slurm is asked again at once when a health phase changes, else with backoff up
        to WATCH_MAX_QUERY_S while its answers stay the same."""
        if self._remote is not None:
            while True:
                yield self.status(names), time.time()
                time.sleep(interval_s)
        from glm5_hpc.app.paced_query import PacedQuery
        from glm5_hpc.app.status import status

        query = PacedQuery(interval_s, max(interval_s, WATCH_MAX_QUERY_S))
        while True:
            yield status(names or None, self._store, query), query.asked_at
            time.sleep(interval_s)

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
