"""Whether this process is glm5_hpc's own copy on a profile's login node, started over SSH by the
copy on a laptop: there a profile's `ssh:` block names this very machine, so nothing is forwarded
again."""

from __future__ import annotations

import os

ON_LOGIN_NODE = "GLM5_HPC_ON_LOGIN_NODE"  # set to 1 in the environment of every command run over SSH


def on_login_node() -> bool:
    return os.environ.get(ON_LOGIN_NODE) == "1"
