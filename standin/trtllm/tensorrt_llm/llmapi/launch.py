"""STAND-IN for `trtllm-llmapi-launch` (glm5_hpc test/demo equipment): under srun --mpi=pmix,
rank 0 runs the given command (trtllm-serve) and every other rank a worker node."""

from __future__ import annotations

import os
import sys

from tensorrt_llm.llmapi import mgmn_worker_node
from tensorrt_llm.llmapi.world import LAUNCHED, log, rank


def main() -> int:
    command = sys.argv[1:]
    if not command:
        print("usage: trtllm-llmapi-launch COMMAND...", file=sys.stderr)
        return 2
    log(f"mpi_rank: {rank()}")
    if rank() == 0:
        os.environ[LAUNCHED] = "1"
        os.execvp(command[0], command)
    return mgmn_worker_node.main()


if __name__ == "__main__":
    sys.exit(main())
