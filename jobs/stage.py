"""The function submitit runs for every stage: run the stage's rendered script, forward
termination signals to it (so its trap removes the container), and, for serve, run the watcher.

A non-zero exit of the script becomes the job's exit code (SystemExit passes through submitit
without a traceback), so Slurm records FAILED with the script's own code and `afterok`
dependents are cancelled (--kill-on-invalid-dep=yes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from types import FrameType

from glm5_hpc.domain.render import PORT_ENV
from glm5_hpc.domain.watch import WatchSpec
from jobs.watcher import Watcher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def run_stage(stage: str, script: str, watch: WatchSpec | None = None) -> None:
    print(f"glm5_hpc: stage {stage}: running {script}", flush=True)
    env = dict(os.environ)
    if watch is not None:
        port = free_port() if watch.port == "auto" else int(watch.port)
        env[PORT_ENV] = str(port)
        watch = replace(watch, port=port)
        print(f"glm5_hpc: serve port {port}", flush=True)
    proc = subprocess.Popen(["bash", script], stdout=sys.stdout, stderr=sys.stderr, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    watcher = None
    if watch is not None:
        watcher = Watcher(watch, give_up=lambda reason: forward(signal.SIGTERM, None))
        watcher.start()
    rc = proc.wait()
    if watcher is not None:
        watcher.stop.set()
        watcher.join(timeout=10)
        if watcher.doc["phase"] not in ("failed",):
            watcher.record(phase="stopped", reason=f"server exited with code {rc}")
    if rc != 0:
        print(f"glm5_hpc: stage {stage}: {script} exited with code {rc}", file=sys.stderr, flush=True)
        raise SystemExit(rc if rc > 0 else 128 - rc)
