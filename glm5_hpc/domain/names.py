"""The chain's stage names, and the names that tie Slurm jobs to a deployment and a run.
Import-light on purpose: `status` needs these without loading the profile schema."""

from __future__ import annotations

import re

from glm5_hpc.errors import InputError

_DEPLOYMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
PREP, BUILD, SERVE = "prep-model", "build-wheel", "serve"
STAGES = (PREP, BUILD, SERVE)
# an endpoint's scope (domain/reach.py): on its node only, or from every node and the login node
NODE_ONLY, CLUSTER = "node", "cluster"


def job_name(deployment: str, stage: str) -> str:
    return f"glm5-{deployment}-{stage}"


def job_comment(deployment: str, run_id: str) -> str:
    """Every job carries its run id, so a job whose id was never recorded can be found again."""
    return f"glm5_hpc:{deployment}:{run_id}"


def check_deployment_name(name: str) -> str:
    """A deployment name becomes file names, job names and container names: only [a-z0-9-]."""
    if not _DEPLOYMENT.fullmatch(name):
        raise InputError(f"deployment name {name!r} must match {_DEPLOYMENT.pattern} (lower case, digits, '-')")
    return name
