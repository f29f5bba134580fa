"""git, asked on the machine that submits: the commit a branch points at."""

from __future__ import annotations

import subprocess

from glm5_hpc.errors import Glm5Error, InputError


def git_commit(repo: str, branch: str) -> str:
    """The branch's current commit, pinned at submit time so the build is reproducible."""
    try:
        out = subprocess.run(["git", "ls-remote", "--heads", repo, f"refs/heads/{branch}"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Glm5Error(f"git ls-remote {repo} timed out after 60s; check network access to the source repository") from None
    sha = out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else ""
    if not sha:
        raise InputError(
            f"branch {branch!r} not found in {repo} (git: {out.stderr.strip()[-300:] or 'no such branch'}); "
            "check recipe.source.repo and recipe.source.branch in the profile"
        )
    return sha
