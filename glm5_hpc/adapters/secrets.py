"""Secret values, read where they are used, at run time: never rendered into scripts, pickled,
put in argv, logged or recorded. Only their names and sources travel."""

from __future__ import annotations

import os
from pathlib import Path

from glm5_hpc.domain.profile import Secret
from glm5_hpc.errors import Glm5Error, InputError


def read_secret(name: str, source: Secret) -> str:
    try:
        if source.file:
            return Path(source.file).expanduser().read_text().strip()
        return os.environ[str(source.env)]
    except (OSError, KeyError) as exc:
        where = f"file {source.file}" if source.file else f"environment variable {source.env}"
        raise Glm5Error(f"secret {name}: cannot read it from {where} here ({type(exc).__name__})") from None


def check_env_secrets(secrets: dict[str, Secret]) -> None:
    """At submit: a secret read from the job's environment must be set in this one, which sbatch
    passes on to the job; found missing here, not on the node after the queue."""
    for key, source in secrets.items():
        if source.env is not None and not os.environ.get(source.env):
            raise InputError(
                f"secret {key}: environment variable {source.env} is not set (or empty) here; the job inherits this "
                f"shell's environment, so export {source.env} before submitting, or read it from a file: instead"
            )
