"""Files glm5_hpc ships beside its code: the `sbatch/` templates and the bundled `cluster_profiles/`."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from glm5_hpc.domain.profile import Profile, parse_profile
from glm5_hpc.domain.render import TEMPLATES
from glm5_hpc.errors import ProfileError


def templates() -> dict[str, str]:
    root = files("sbatch")
    return {name: root.joinpath(name).read_text() for name in TEMPLATES}


def profile_dirs() -> list[Path]:
    """Where `--profile NAME` is looked up, first match wins."""
    dirs = []
    if env := os.environ.get("GLM5_HPC_PROFILES"):
        dirs.append(Path(env))
    dirs += [Path.cwd() / "cluster_profiles", Path.home() / ".config" / "glm5_hpc" / "profiles"]
    dirs.append(Path(str(files("cluster_profiles"))))
    return dirs


def find_profile(name_or_path: str) -> Path:
    """The profile's file, as an absolute path: the record keeps it, and later commands (redeploy,
    probe) may run from any directory."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path.resolve()
    for d in profile_dirs():
        path = d / f"{name_or_path}.yaml"
        if path.is_file():
            return path.resolve()
    where = ", ".join(str(d) for d in profile_dirs())
    raise ProfileError(f"profile {name_or_path!r} not found; looked for {name_or_path}.yaml in: {where}")


def load_profile(name_or_path: str) -> Profile:
    path = find_profile(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot read it ({exc.strerror})") from None
    return parse_profile(text, str(path), path.stem)
