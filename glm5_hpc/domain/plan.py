"""What a submission will do: the stages of the chain, their dependencies, the wheel cache key,
and the names that tie Slurm jobs and containers to a deployment. Pure."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from glm5_hpc.domain.patching import digest
from glm5_hpc.domain.profile import Profile, StageResources
from glm5_hpc.domain.recipe_patches import SOURCE_PATCHES

PREP, BUILD, SERVE = "prep-model", "build-wheel", "serve"
STAGES = (PREP, BUILD, SERVE)
_DEPLOYMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class StagePlan:
    stage: str
    resources: StageResources
    after: str | None  # the stage this one waits for (afterok)


@dataclass(frozen=True)
class RunPaths:
    work_dir: PurePosixPath
    deployment: str
    run_id: str

    @property
    def run_dir(self) -> PurePosixPath:
        return self.work_dir / "deployments" / self.deployment / "runs" / self.run_id

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


def check_deployment_name(name: str) -> str:
    if not _DEPLOYMENT.fullmatch(name):
        raise ValueError(f"deployment name {name!r} must match {_DEPLOYMENT.pattern} (lower case, digits, '-')")
    return name


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


def plan_chain(profile: Profile, wheel_cached: bool) -> list[StagePlan]:
    stages = profile.stages
    plan = [StagePlan(PREP, stages.prep_model, None)]
    if profile.recipe.variant == "source-build" and not wheel_cached:
        assert stages.build_wheel is not None  # the profile validator guarantees it
        plan.append(StagePlan(BUILD, stages.build_wheel, PREP))
    plan.append(StagePlan(SERVE, stages.serve, plan[-1].stage))
    return plan


def job_name(deployment: str, stage: str) -> str:
    return f"glm5-{deployment}-{stage}"


def job_comment(deployment: str, run_id: str) -> str:
    """Every job carries its run id, so a job whose id was never recorded can be found again."""
    return f"glm5_hpc:{deployment}:{run_id}"


def container_name(deployment: str, stage: str, job_id: str) -> str:
    return f"glm5-{deployment}-{stage}-{job_id}"
