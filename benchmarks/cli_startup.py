"""CLI start-up: `glm5_hpc --help` and `glm5_hpc status` (no deployments) against the same CLI
with its heavy modules imported at start-up, beside the floor of starting the same Python
(`python -c pass`) and a bare `sacct` call.

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]

Heavy modules (pydantic, submitit, httpx, fabric, aiohttp) are imported only by the commands that need
them, so `--help` costs little more than the interpreter itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
    return times


HEAVY = "pydantic, submitit, httpx, fabric, aiohttp, tenacity, yaml, glm5_hpc.domain.profile"
EAGER = f"import {HEAVY}; from glm5_hpc.cli import main; main()"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "GLM5_HPC_STATE_DIR": state}
        floor = statistics.median(timed([sys.executable, "-c", "pass"], args.runs, env))
        sacct = statistics.median(timed(["sacct", "-X", "-n", "-S", "now"], args.runs, env))
        print(f"`python -c pass` (the interpreter's floor): {floor * 1e3:.0f} ms; "
              f"a bare `sacct -X -n -S now`: {sacct * 1e3:.0f} ms\n")  # fmt: skip
        print(
            "| command | glm5_hpc (median / max) | same CLI, heavy modules imported eagerly (median) | ratio |\n|---|---|---|---|"
        )
        for cmd in (["--help"], ["status"]):
            ours = timed([str(BIN / "glm5_hpc"), *cmd], args.runs, env)
            eager = statistics.median(timed([sys.executable, "-c", EAGER, *cmd], args.runs, env))
            med = statistics.median(ours)
            cells = [
                f"`glm5_hpc {cmd[0]}`",
                f"{med * 1e3:.0f} / {max(ours) * 1e3:.0f} ms",
                f"{eager * 1e3:.0f} ms",
                f"{eager / med:.1f}x",
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
