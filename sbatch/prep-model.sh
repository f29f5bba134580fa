#!/usr/bin/env bash
# glm5_hpc stage prep-model (deployment @@{deployment}, run @@{run_id}):
# edit the checkpoint's config.json and tokenizer_config.json (recipe Steps 1-2). CPU only; never reads weights.
set -euo pipefail
exec @@{python} -m glm5_hpc prep @@{model_dir} @@{prep_flags} --record @@{run_dir}/prep.json
