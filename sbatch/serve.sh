#!/usr/bin/env bash
# glm5_hpc stage serve (deployment @@{deployment}, run @@{run_id}):
# run serve-container.sh in the container; the job lives as long as trtllm-serve does.
set -euo pipefail
@@{preflight}

@@{runtime}
@@{launch}
