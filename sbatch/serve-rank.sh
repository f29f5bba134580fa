#!/usr/bin/env bash
# glm5_hpc serve stage, one MPI rank of a server across nodes (deployment @@{deployment}, run @@{run_id}):
# each srun task runs this under jobs/rank.py, in a container of its own. Argument: serve-container.sh's mode.
set -euo pipefail
@@{runtime}
in_runtime @@{run_dir} bash @@{scripts}/serve-container.sh "$@"
