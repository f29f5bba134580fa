#!/usr/bin/env bash
# glm5_hpc stage prep-model (deployment glm5, run 20260101-000000-abcd):
# edit the checkpoint's config.json and tokenizer_config.json (recipe Steps 1-2). CPU only; never reads weights.
set -euo pipefail
exec /shared/glm5/venv/bin/python -m glm5_hpc prep /shared/models/GLM-5-nvfp4-v1  --record /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/prep.json
