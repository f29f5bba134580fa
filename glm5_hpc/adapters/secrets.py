"""Secret values, read where they are used, at run time: never rendered into scripts, pickled,
put in argv, logged or recorded. Only their names and sources travel."""

from __future__ import annotations

import os
from pathlib import Path

from glm5_hpc.domain.profile import Secret
from glm5_hpc.errors import Glm5Error


def read_secret(name: str, source: Secret) -> str:
    try:
        if source.file:
            return Path(source.file).expanduser().read_text().strip()
        return os.environ[str(source.env)]
    except (OSError, KeyError) as exc:
        where = f"file {source.file}" if source.file else f"environment variable {source.env}"
        raise Glm5Error(f"secret {name}: cannot read it from {where} here ({type(exc).__name__})") from None
