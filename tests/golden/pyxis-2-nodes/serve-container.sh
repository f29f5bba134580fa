#!/usr/bin/env bash
# glm5_hpc serve stage, inside the container (recipe Steps 6-9).
set -euo pipefail
mode=${1:-all}  # all: set up and serve; setup: set up this node and stop; serve: set up already
[[ $mode == serve ]] || PYTHONPATH=/opt/glm5_hpc python3 -m jobs.image_check --variant source-build --image nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3 --record /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/image.json
[[ $mode == serve ]] || pip install --no-deps --force-reinstall /shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk/tensorrt_llm-*.whl
[[ $mode == serve ]] || PYTHONPATH=/opt/glm5_hpc python3 -m jobs.patch_flashinfer --record /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/flashinfer.json
[[ $mode != setup ]] || exit 0
mkdir -p /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/ranks/"$SLURM_JOB_ID" && echo "$SLURMD_NODENAME" > /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/ranks/"$SLURM_JOB_ID/$SLURM_PROCID"  # started
exec trtllm-llmapi-launch trtllm-serve serve /workspace/scratch/GLM-5-nvfp4-v1 --host 0.0.0.0 --port "$GLM5_SERVE_PORT" --tp_size 16 --max_batch_size 64 --max_num_tokens 8192 --trust_remote_code --extra_llm_api_options /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-config.yaml
