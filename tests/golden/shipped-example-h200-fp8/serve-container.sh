#!/usr/bin/env bash
# glm5_hpc serve stage, inside the container (recipe Steps 6-9).
set -euo pipefail
PYTHONPATH=/opt/glm5_hpc python3 -m jobs.image_check --variant stock --image nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc9 --record /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/image.json
: # stock variant: the image's own TensorRT-LLM serves GLM-5
PYTHONPATH=/opt/glm5_hpc python3 -m jobs.patch_flashinfer --record /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/flashinfer.json
exec trtllm-serve serve /workspace/scratch/GLM-5-FP8 --host 0.0.0.0 --port "$GLM5_SERVE_PORT" --tp_size 8 --ep_size 8 --max_batch_size 128 --max_num_tokens 8192 --trust_remote_code --extra_llm_api_options /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-config.yaml
