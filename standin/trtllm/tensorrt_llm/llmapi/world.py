"""STAND-IN for the MPI world of a TensorRT-LLM server across nodes (glm5_hpc test/demo equipment).

Ranks find each other the way srun tells them who they are (SLURM_PROCID of SLURM_NTASKS, or Open
MPI's and PMIx's variables), and meet in a directory on the shared file system instead of over
MPI: each rank keeps a heartbeat file there. Like NCCL's timeout, a rank whose peer stops beating
ends itself, so losing any node ends the whole server.

  GLM5_STANDIN_RANK_TIMEOUT_S  a peer silent this long is lost (default 5)
  GLM5_STANDIN_WORLD_DIR       where the ranks meet (default: .standin-world/<job>.<step> under the working directory)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

BEAT_S = 0.5
LAUNCHED = "GLM5_STANDIN_LAUNCHED"  # set by trtllm-llmapi-launch for the rank it starts as the server


def log(msg: str) -> None:
    print(f"[STAND-IN] {time.strftime('%H:%M:%S')} {msg}", flush=True)


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def rank() -> int:
    return _env_int("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", default=0)


def size() -> int:
    """The world's size; 1 unless trtllm-llmapi-launch started this process."""
    if not os.environ.get(LAUNCHED) and rank() == 0:
        return 1
    return _env_int("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", default=1)


class World:
    def __init__(self) -> None:
        self.rank, self.size = rank(), size()
        step = f"{os.environ.get('SLURM_JOB_ID', 'nojob')}.{os.environ.get('SLURM_STEP_ID', '0')}"
        self.dir = Path(os.environ.get("GLM5_STANDIN_WORLD_DIR") or Path.cwd() / ".standin-world" / step)
        self.timeout_s = float(os.environ.get("GLM5_STANDIN_RANK_TIMEOUT_S", "5"))
        self.node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()

    def beat_file(self, r: int) -> Path:
        return self.dir / f"rank-{r}"

    def join(self) -> None:
        """Announce this rank and keep its heartbeat going for as long as the process lives."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.beat_file(self.rank).write_text(self.node)
        log(f"rank {self.rank} of {self.size} joined on node {self.node}")

        def beat() -> None:
            while True:
                os.utime(self.beat_file(self.rank))
                time.sleep(BEAT_S)

        threading.Thread(target=beat, name="standin-beat", daemon=True).start()

    def alive(self, r: int) -> bool:
        """Rank r beats now (a file left by an earlier attempt of the same job step does not count)."""
        try:
            return time.time() - self.beat_file(r).stat().st_mtime <= self.timeout_s
        except FileNotFoundError:
            return False

    def wait_all(self) -> None:
        """Rank 0: block until every rank has joined, as MPI's init does."""
        last = -1
        while True:
            joined = sum(self.alive(r) for r in range(self.size))
            if joined != last:
                log(f"waiting for ranks: {joined} of {self.size} joined")
                last = joined
            if joined == self.size:
                return
            time.sleep(0.2)

    def lost(self, peers: range) -> str:
        """The first peer whose heartbeat stopped, described; "" while all beat."""
        now = time.time()
        for r in peers:
            try:
                age = now - self.beat_file(r).stat().st_mtime
            except FileNotFoundError:
                age = float("inf")
            if age > self.timeout_s:
                return f"rank {r} silent for {age:.1f}s (timeout {self.timeout_s:g}s)"
        return ""

    def end_when_lost(self, peers: range) -> None:
        """End this process (exit 1) once a peer is lost: the collective would hang or fail."""

        def watch() -> None:
            while not (why := self.lost(peers)):
                time.sleep(BEAT_S)
            log(f"rank {self.rank}: {why}: ending")
            os._exit(1)

        threading.Thread(target=watch, name="standin-peers", daemon=True).start()
