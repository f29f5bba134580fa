"""One srun task of a server across nodes (stages.serve.nodes > 1): what jobs/stage.py is to a
one-node serve job, for one MPI rank on any node of the allocation.

It holds this task's own lifeline (the stage process's lock lives on the first node only), so the
rank's container stops however the task ends, forwards Slurm's TERM to the script (whose trap
removes the container), and ends with the script's exit code, so srun --kill-on-bad-exit ends the
other ranks.

    python -m jobs.rank SCRIPT [ARGS...]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from glm5_hpc.domain.render import LIFELINE_ENV
from jobs import lifeline


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m jobs.rank SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    task = f"{os.environ.get('SLURM_JOB_ID', os.getpid())}-rank{os.environ.get('SLURM_PROCID', '0')}"
    lock = lifeline.lock_path(task)
    lifeline.hold(lock)  # released when this process ends, however it ends
    try:
        proc = subprocess.Popen(["bash", *argv], env={**os.environ, LIFELINE_ENV: str(lock)})
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
        rc = proc.wait()
    finally:
        lock.unlink(missing_ok=True)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
