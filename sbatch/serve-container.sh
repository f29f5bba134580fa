#!/usr/bin/env bash
# glm5_hpc serve stage, inside the container (recipe Steps 6-9).
set -euo pipefail
@@{mode}@@{setup}PYTHONPATH=@@{tool_mount} python3 -m jobs.image_check --variant @@{variant} --image @@{image} --record @@{run_dir}/image.json
@@{setup}@@{install_wheel}
@@{setup}PYTHONPATH=@@{tool_mount} python3 -m jobs.patch_flashinfer --record @@{run_dir}/flashinfer.json
@@{rank}exec @@{launcher}trtllm-serve serve @@{serve_args}
