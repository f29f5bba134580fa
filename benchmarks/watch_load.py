"""Scheduler load while watching: Slurm queries per minute issued by `glm5_hpc status --watch`
(default 5 s refresh) and by the serve job's watcher, against the number of deployments (3 real
held jobs each), beside a hand-written per-deployment monitor (`squeue -j SERVE_JOB` every 10 s
for each deployment, as a wait_server-style script does). PATH wrappers count every sacct,
squeue and scontrol call.

    .venv/bin/python benchmarks/watch_load.py [--steady 90]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_bench import GLM5_HPC, bench_profile, glm5, held_jobs, path_wrappers, stage_jobs, write_records

PORT = 18991


def per_minute(log: Path, who: str, start: float, end: float) -> float:
    """Calls made by `who` between the wall-clock times start and end, per minute."""
    calls = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
    return sum(1 for _cmd, w, at in calls if w == who and start <= float(at) < end) * 60 / (end - start)


def counted_env(tmp: Path, log: str) -> dict[str, str]:
    """The environment of a counted observer: state under tmp, Slurm calls logged to tmp/log."""
    bindir = tmp / f"bin-{log}"
    path_wrappers(bindir, tmp / log)
    return {**os.environ, "GLM5_HPC_STATE_DIR": str(tmp / "state"), "PATH": f"{bindir}:{os.environ['PATH']}"}


def status_watch(env: dict[str, str], window_s: float) -> float:
    """Run `status --watch` (default interval) for window_s; returns when it started."""
    t0 = time.time()
    proc = subprocess.Popen([GLM5_HPC, "status", "--watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(window_s)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return t0


def hand_monitor(serve_ids: list[str], env: dict[str, str], window_s: float) -> None:
    end = time.monotonic() + window_s
    while time.monotonic() < end:
        for jid in serve_ids:
            subprocess.run(["squeue", "-h", "-j", jid], env=env, capture_output=True, check=False)
        time.sleep(max(0.0, min(10.0, end - time.monotonic())))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steady", type=float, default=90, help="seconds watched after the first minute (1 deployment)")
    args = p.parse_args()
    print("| deployments | jobs | glm5_hpc status --watch, first minute | after the first minute "
          "| per-deployment squeue loop (10 s) | ratio (first minute) |\n|---|---|---|---|---|---|")  # fmt: skip
    for deployments in (1, 10, 100):
        ids = held_jobs(3 * deployments)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                write_records(Path(tmp) / "state", ids, deployments)
                steady = deployments == 1  # the count does not depend on the deployments; the steady rate once is enough
                t0 = status_watch(counted_env(Path(tmp), "ours"), 60 + (args.steady if steady else 0))
                first = per_minute(Path(tmp) / "ours", "client", t0, t0 + 60)
                later = (
                    f"{per_minute(Path(tmp) / 'ours', 'client', t0 + 60, t0 + 60 + args.steady):.0f}/min" if steady else "same"
                )
                t1 = time.time()
                hand_monitor(ids[2::3], counted_env(Path(tmp), "hand"), 60)
                hand = per_minute(Path(tmp) / "hand", "client", t1, time.time())
                print(f"| {deployments} | {len(ids)} | {first:.0f}/min | {later} | {hand:.0f}/min | {hand / first:.1f}x |")
        finally:
            subprocess.run(["scancel", *ids], check=True)
    with tempfile.TemporaryDirectory(prefix="glm5-bench-") as tmp:
        root = Path(tmp)
        profile = bench_profile(root, PORT)
        env = counted_env(root, "calls")
        t0 = time.time()
        glm5("submit", "--profile", str(profile), "--name", "wl", "--wait", "--timeout", "600", env=env)
        t1 = time.time()
        wait_calls = per_minute(root / "calls", "client", t0, t1) * (t1 - t0) / 60
        time.sleep(60)  # the deployment serves; its watcher probes liveness every 10 s
        job_rate = per_minute(root / "calls", "job", t1, time.time())
        serve = stage_jobs("wl", env)["serve"]
        glm5("cancel", "wl", env=env)
        print("\n| observer | Slurm queries per minute |\n|---|---|")
        print(f"| `submit --wait`, {t1 - t0:.0f} s to healthy | {wait_calls:.0f} calls in all |")
        print(f"| the serve job's watcher (job {serve}), 60 s of serving | {job_rate:.0f}/min |")


if __name__ == "__main__":
    main()
