#!/usr/bin/env bash
# glm5_hpc stage serve (deployment glm5, run 20260101-000000-abcd):
# run serve-container.sh in the container; the job lives as long as trtllm-serve does.
set -euo pipefail
srun --nodes=2 --ntasks-per-node=1 /shared/glm5/venv/bin/python -m glm5_hpc preflight --min-gpus 8 --model /shared/models/GLM-5-nvfp4-v1 --cuda-arch 100  # every node of the server

# the container runtime: serve-rank.sh, in each rank's srun task

# one server over 2 nodes, 8 MPI rank(s) on each; any rank ending ends them all
exec srun --mpi=pmix --nodes=2 --ntasks-per-node=8 --kill-on-bad-exit=1 /shared/glm5/venv/bin/python -m jobs.rank /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-rank.sh all
