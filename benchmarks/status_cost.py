"""Status cost: `glm5_hpc status --json` against one bare `sacct` for the same jobs, at 1, 10 and
100 deployments (3 real held jobs each), with the number of Slurm queries per refresh counted.

    .venv/bin/python benchmarks/status_cost.py [--runs 5]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_bench import held_jobs, path_wrappers, write_records

BIN = Path(sys.executable).parent


def median_s(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    print(
        f"{'deployments':>11} {'jobs':>5} {'glm5_hpc status':>16} {'bare sacct':>11} {'ratio':>6} {'Slurm calls per status':>23}"
    )
    for deployments in (1, 10, 100):
        ids = held_jobs(3 * deployments)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                state, log, bindir = Path(tmp) / "state", Path(tmp) / "calls", Path(tmp) / "bin"
                write_records(state, ids, deployments)
                path_wrappers(bindir, log)
                env = {**os.environ, "GLM5_HPC_STATE_DIR": str(state), "PATH": f"{bindir}:{os.environ['PATH']}"}
                ours = median_s([str(BIN / "glm5_hpc"), "status", "--json"], env, args.runs)
                calls = log.read_text().split()
                bare = median_s(["sacct", "-X", "-P", "-n", "-o", "JobID,State", "-j", ",".join(ids)], {**os.environ}, args.runs)
                per_call = f"{calls.count('sacct') // args.runs} sacct + {calls.count('squeue') // args.runs} squeue"
                timing = f"{ours * 1e3:>14.0f}ms {bare * 1e3:>9.0f}ms {ours / bare:>5.1f}x"
                print(f"{deployments:>11} {len(ids):>5} {timing} {per_call:>23}")
        finally:
            subprocess.run(["scancel", *ids], check=True)


if __name__ == "__main__":
    main()
