"""Status cost: `glm5_hpc status --json` against one bare `sacct` for the same jobs, at 1, 10 and
100 deployments (3 real held jobs each), with the number of Slurm queries per refresh counted.

    .venv/bin/python benchmarks/status_cost.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
STAGES = ("prep-model", "build-wheel", "serve")


def held_jobs(n: int) -> list[str]:
    return [subprocess.run(["sbatch", "--parsable", "--hold", "-p", "cpu", "--mem=10", "-J", "bench", "--wrap", "true"],
                           capture_output=True, text=True, check=True).stdout.strip() for _ in range(n)]  # fmt: skip


def write_records(state: Path, ids: list[str], deployments: int) -> None:
    (state / "deployments").mkdir(parents=True)
    for d in range(deployments):
        stages = [{"stage": s, "job_id": ids[3 * d + k]} for k, s in enumerate(STAGES)]
        run = {"run_id": "r", "run_dir": str(state), "health_file": str(state / "none.json"), "logs": "",
               "planned": list(STAGES), "stages": stages, "submission": "complete"}  # fmt: skip
        (state / "deployments" / f"d{d:03d}.json").write_text(json.dumps({"schema": 1, "name": f"d{d:03d}", "runs": [run]}))


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
                bindir.mkdir()
                for cmd in ("sacct", "squeue"):
                    (bindir / cmd).write_text(f'#!/bin/sh\necho {cmd} >> {log}\nexec /usr/bin/{cmd} "$@"\n')
                    (bindir / cmd).chmod(0o755)
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
