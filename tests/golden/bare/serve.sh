#!/usr/bin/env bash
# glm5_hpc stage serve (deployment glm5, run 20260101-000000-abcd):
# run serve-container.sh in the container; the job lives as long as trtllm-serve does.
set -euo pipefail
/shared/glm5/venv/bin/python -m glm5_hpc preflight --min-gpus 8 --model /shared/models/GLM-5-nvfp4-v1 --cuda-arch 100

# Runtime: bare (no container). Commands run on the node in this job's environment, which must
# provide the image's software (python3 with pip, TensorRT-LLM's dependencies, flashinfer).
mkdir -p /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool
ln -sfn /shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool/glm5_hpc
ln -sfn /shared/glm5/venv/lib/python3.11/site-packages/jobs /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool/jobs
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  (cd "$workdir" && set -a && . /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/env.sh && set +a && exec "$@")
}

in_runtime /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd bash /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-container.sh
