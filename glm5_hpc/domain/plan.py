"""What a submission will do: the stages of the chain, their dependencies, the wheel cache key,
and the names that tie Slurm jobs and containers to a deployment. Pure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from glm5_hpc.domain.names import BUILD, PREP, SERVE, STAGES
from glm5_hpc.domain.patching import digest
from glm5_hpc.domain.profile import Profile, StageResources
from glm5_hpc.domain.recipe_patches import SOURCE_PATCHES

METRICS_DIR = "metrics"  # in the deployment's folder, beside its route files


@dataclass(frozen=True)
class StagePlan:
    stage: str
    resources: StageResources | None
    after: str | None  # the submitted stage this one waits for (afterok)
    skipped: str = ""  # why no job is submitted for this stage, or ""


@dataclass(frozen=True)
class RunPaths:
    work_dir: PurePosixPath
    deployment: str
    run_id: str

    @property
    def deployment_dir(self) -> PurePosixPath:
        return self.work_dir / "deployments" / self.deployment

    @property
    def run_dir(self) -> PurePosixPath:
        return self.deployment_dir / "runs" / self.run_id

    @property
    def route_file(self) -> PurePosixPath:
        """Which serve job the router forwards to; written by serve jobs, across runs."""
        return self.deployment_dir / "route.json"

    def replica_route_file(self, replica: int) -> PurePosixPath:
        """Replica 0's route is route.json; replica i's is route-r<i>.json, beside it (the router reads them all)."""
        return self.route_file if replica == 0 else self.deployment_dir / f"route-r{replica}.json"

    def replica_health_file(self, replica: int) -> PurePosixPath:
        return self.health_file if replica == 0 else self.run_dir / f"health-r{replica}.json"

    def replica_handovers_file(self, replica: int) -> PurePosixPath:
        return self.handovers_file if replica == 0 else self.run_dir / f"handovers-r{replica}.json"

    @property
    def router_file(self) -> PurePosixPath:
        """Where the router job listens; written by the router job."""
        return self.deployment_dir / "router.json"

    @property
    def handovers_file(self) -> PurePosixPath:
        """The serve jobs that took over from this run's first one, written by the serve jobs."""
        return self.run_dir / "handovers.json"

    @property
    def metrics_dir(self) -> PurePosixPath:
        """The watchers' Prometheus textfiles (watcher-<job>.prom), which the router serves with its own metrics."""
        return self.deployment_dir / METRICS_DIR

    @property
    def ranks_dir(self) -> PurePosixPath:
        """A server across nodes: one file per MPI rank whose container started, under ranks/<job id>/<rank>."""
        return self.run_dir / "ranks"

    @property
    def scripts(self) -> PurePosixPath:
        return self.run_dir / "scripts"

    @property
    def slurm_logs(self) -> PurePosixPath:
        return self.run_dir / "slurm"

    @property
    def health_file(self) -> PurePosixPath:
        return self.run_dir / "health.json"

    def wheel_dir(self, key: str) -> PurePosixPath:
        return self.work_dir / "wheels" / key


def wheel_key(profile: Profile, commit: str) -> str:
    """Everything that determines the built wheel: source, commit, our patches, build flags, image."""
    doc = {
        "repo": profile.recipe.source.repo,
        "commit": commit,
        "patches": digest(SOURCE_PATCHES),
        "build": profile.recipe.build.model_dump(),
        "image": profile.container.image,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def plan_chain(profile: Profile, wheel_cached: bool, prep_done: bool = False, from_stage: str | None = None) -> list[StagePlan]:
    """The three stages, each submitted or skipped with a reason. `from_stage` forces it and every
    later stage to run (redeploy --from); serve always runs."""
    forced = set(STAGES[STAGES.index(from_stage) :]) if from_stage else {SERVE}
    skip = {
        PREP: "no checkpoint edit asked for" if not any(profile.model.edits.model_dump().values())
        else "checkpoint already prepared" if prep_done and PREP not in forced else "",
        BUILD: "stock variant: no build" if profile.recipe.variant == "stock"
        else "wheel cached" if wheel_cached and BUILD not in forced else "",
        SERVE: "",
    }  # fmt: skip
    resources = {PREP: profile.stages.prep_model, BUILD: profile.stages.build_wheel, SERVE: profile.stages.serve}
    plan, after = [], None
    for stage in STAGES:
        if skip[stage]:
            plan.append(StagePlan(stage, None, None, skip[stage]))
            continue
        plan.append(StagePlan(stage, resources[stage], after))
        after = stage
    return plan
