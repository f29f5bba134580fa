"""Scheduler load while watching: Slurm queries per minute issued by `glm5_hpc status --watch`
(default 5 s refresh) and by the serve job's watcher, against the number of deployments (3 real
held jobs each), beside a hand-written per-deployment monitor (`squeue -j SERVE_JOB` every 10 s
for each deployment, as a wait_server-style script does). PATH wrappers count every sacct,
squeue and scontrol call.

    .venv/bin/python benchmarks/watch_load.py [--window 30]
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


def per_minute(log: Path, who: str, window_s: float) -> float:
    calls = [ln for ln in log.read_text().splitlines() if ln.endswith(f" {who}")] if log.exists() else []
    return len(calls) * 60 / window_s


def counted_env(tmp: Path, log: str) -> dict[str, str]:
    """The environment of a counted observer: state under tmp, Slurm calls logged to tmp/log."""
    bindir = tmp / f"bin-{log}"
    path_wrappers(bindir, tmp / log)
    return {**os.environ, "GLM5_HPC_STATE_DIR": str(tmp / "state"), "PATH": f"{bindir}:{os.environ['PATH']}"}


def status_watch(env: dict[str, str], window_s: float) -> None:
    proc = subprocess.Popen([GLM5_HPC, "status", "--watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(window_s)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def hand_monitor(serve_ids: list[str], env: dict[str, str], window_s: float) -> None:
    end = time.monotonic() + window_s
    while time.monotonic() < end:
        for jid in serve_ids:
            subprocess.run(["squeue", "-h", "-j", jid], env=env, capture_output=True, check=False)
        time.sleep(max(0.0, min(10.0, end - time.monotonic())))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--window", type=float, default=30, help="seconds each observer runs")
    args = p.parse_args()
    w = args.window
    print("| deployments | jobs | glm5_hpc status --watch | per-deployment squeue loop (10 s) | ratio |\n|---|---|---|---|---|")
    for deployments in (1, 10, 100):
        ids = held_jobs(3 * deployments)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                write_records(Path(tmp) / "state", ids, deployments)
                status_watch(counted_env(Path(tmp), "ours"), w)
                ours = per_minute(Path(tmp) / "ours", "client", w)
                hand_monitor(ids[2::3], counted_env(Path(tmp), "hand"), w)
                hand = per_minute(Path(tmp) / "hand", "client", w)
                print(f"| {deployments} | {len(ids)} | {ours:.0f}/min | {hand:.0f}/min | {hand / ours:.1f}x |")
        finally:
            subprocess.run(["scancel", *ids], check=True)
    with tempfile.TemporaryDirectory(prefix="glm5-bench-") as tmp:
        root = Path(tmp)
        profile = bench_profile(root, PORT)
        env = counted_env(root, "calls")
        t0 = time.monotonic()
        glm5("submit", "--profile", str(profile), "--name", "wl", "--wait", "--timeout", "600", env=env)
        waited = time.monotonic() - t0
        wait_rate = per_minute(root / "calls", "client", waited)
        (root / "calls").unlink(missing_ok=True)
        time.sleep(w)  # the deployment serves; its watcher probes liveness every 10 s
        job_rate = per_minute(root / "calls", "job", w)
        serve = stage_jobs("wl", env)["serve"]
        glm5("cancel", "wl", env=env)
        print("\n| observer | Slurm queries per minute |\n|---|---|")
        print(f"| `submit --wait` ({waited:.0f} s to healthy) | {wait_rate:.0f}/min |")
        print(f"| the serve job's watcher (job {serve}, {w:g} s of serving) | {job_rate:.0f}/min |")


if __name__ == "__main__":
    main()
