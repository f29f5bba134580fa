"""Every benchmark, one after another, each printed under the command that reproduces it alone.
Runs on the local cluster's test instance (scripts/local-cluster --instance test up), which the
test suite also uses: run them one after the other.

    .venv/bin/python benchmarks/all.py > /tmp/performance.txt
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ("chain_vs_recipe.py", "--trials", "3"),  # time to healthy, GPU-hours, redeploy
    ("watch_load.py",),  # scheduler load while watching
    ("zero_downtime.py",),  # handover and redeploy --no-downtime under load
    ("scale_out.py",),  # throughput at 1 and 2 replicas; the router against nginx
    ("status_cost.py", "--runs", "5"),
    ("readiness_latency.py", "--trials", "5"),
    ("prep_scaling.py", "--shards", "8", "--shard-gb", "50", "--repeat", "20"),
    ("cli_startup.py", "--runs", "20"),
]


def main() -> None:
    for script, *args in RUNS:
        print(f"\n=== .venv/bin/python benchmarks/{script} {' '.join(args)}\n", flush=True)
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)
        print(f"\n({time.monotonic() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
