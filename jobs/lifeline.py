"""A container's life bound to its Slurm job's, whatever ends the job.

A docker-compatible engine runs the container under its own monitor (conmon, containerd-shim),
outside the job's processes: when the job is killed by SIGKILL (the OOM killer, Slurm after
KillWait) no trap runs and the container would serve on, holding the GPUs. So the job's stage
process holds an exclusive lock on a node-local file for as long as it lives (`hold`), and the
container's command runs under `main`: it waits for that lock, and getting it means the job is
gone, so it stops the command (TERM, then KILL) and the container ends and is removed (--rm).

Runs inside the container as a plain script (python3 lifeline.py LOCK -- COMMAND...): stdlib only.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

STOP_GRACE_S = 10.0


def lock_path(job_id: str) -> Path:
    """Node-local (a file lock on a shared file system may not work): $TMPDIR, private to the user."""
    base = Path(os.environ.get("TMPDIR") or "/tmp") / f"glm5_hpc-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    return base / f"lifeline-{job_id}"


def hold(path: Path) -> int:
    """Take the lock for this process's lifetime (close-on-exec: no child keeps it alive)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: lifeline.py LOCKFILE -- COMMAND...", file=sys.stderr)
        return 2
    lock, command = argv[0], argv[2:]
    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))

    def watch() -> None:
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while the job lives
        print("glm5_hpc: the Slurm job of this container has ended; stopping the container", file=sys.stderr, flush=True)
        child.terminate()
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()

    threading.Thread(target=watch, name="glm5-lifeline", daemon=True).start()
    rc = child.wait()
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
