"""STAND-IN for `python -m tensorrt_llm.llmapi.mgmn_worker_node` (glm5_hpc test/demo equipment):
a rank other than 0 of a server across nodes. It joins the world, then works until rank 0 is gone."""

from __future__ import annotations

import sys
import time

from tensorrt_llm.llmapi.world import World, log


def main() -> int:
    world = World()
    world.join()
    while not world.alive(0):  # rank 0 may start later; MPI init waits for it too
        time.sleep(0.2)
    log(f"rank {world.rank}: worker running (rank 0 serves HTTP)")
    world.end_when_lost(range(0, 1))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
