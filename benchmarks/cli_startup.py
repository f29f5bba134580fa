"""CLI start-up: `glm5_hpc --help` and `glm5_hpc status` (no deployments) against the floor of
starting the same Python (`python -c pass`) and a bare `sacct` call.

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]

Heavy modules (pydantic, submitit, httpx, fabric) are imported only by the commands that need
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "GLM5_HPC_STATE_DIR": state}
        rows = [
            ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
            ("glm5_hpc --help", [str(BIN / "glm5_hpc"), "--help"]),
            ("sacct -X -n -S now (bare Slurm call)", ["sacct", "-X", "-n", "-S", "now"]),
            ("glm5_hpc status (no deployments)", [str(BIN / "glm5_hpc"), "status"]),
        ]
        results = [(label, timed(argv, args.runs, env)) for label, argv in rows]
    print(f"{'command':40} {'median':>9} {'max':>9}")
    for label, t in results:
        print(f"{label:40} {statistics.median(t) * 1e3:>7.0f}ms {max(t) * 1e3:>7.0f}ms")


if __name__ == "__main__":
    main()
