#!/usr/bin/env bash
# glm5_hpc stage serve (deployment glm5, run 20260101-000000-abcd):
# run serve-container.sh in the container; the job lives as long as trtllm-serve does.
set -euo pipefail
/shared/glm5/venv/bin/python -m glm5_hpc preflight --min-gpus 8 --model /shared/models/GLM-5-nvfp4-v1 --cuda-arch 100

# Container runtime: pyxis/enroot. The container runs as a job step (srun), so Slurm stops it
# with the job; a named container keeps what a step installed for the job's later steps.
set -a; . /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/env.sh; set +a
pyxis=(--container-image='nvcr.io#nvidia/tensorrt-llm/release:1.3.0rc3' --container-name=glm5-glm5-serve --container-mounts=/shared/models:/workspace/scratch,/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd:/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd,/shared/glm5/workdir/wheels:/shared/glm5/workdir/wheels:ro,/shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc:/opt/glm5_hpc/glm5_hpc:ro,/shared/glm5/venv/lib/python3.11/site-packages/jobs:/opt/glm5_hpc/jobs:ro )
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  srun --ntasks=1 "${pyxis[@]}" --container-workdir="$workdir" "$@"
}

in_runtime /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd bash /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-container.sh
