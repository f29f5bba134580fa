#!/usr/bin/env bash
# glm5_hpc stage build-wheel (deployment glm5, run 20260101-000000-abcd):
# clone the TensorRT-LLM branch, apply the recipe's C++ fixes, build the wheel in the container
# (recipe Steps 4-5), publish it to the wheel cache.
set -euo pipefail
src=/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/src
rm -rf "$src"
git lfs install --skip-repo
git clone --quiet --branch user/perkzz/glm-flash-trtllm-gen --single-branch https://github.com/PerkzZheng/TensorRT-LLM.git "$src"
git -C "$src" checkout --quiet --detach 0123456789abcdef0123456789abcdef01234567
/shared/glm5/venv/bin/python -m glm5_hpc patch-source "$src"
/shared/glm5/venv/bin/python -m glm5_hpc preflight --cuda-arch 100

# Runtime: bare (no container). Commands run on the node in this job's environment, which must
# provide the image's software (python3 with pip, TensorRT-LLM's dependencies, flashinfer).
mkdir -p /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool
ln -sfn /shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool/glm5_hpc
ln -sfn /shared/glm5/venv/lib/python3.11/site-packages/jobs /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool/jobs
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  (cd "$workdir" && set -a && . /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/env.sh && set +a && exec "$@")
}

in_runtime "$src" python3 scripts/build_wheel.py --fast_build --cuda_architectures 100 --no-venv --job_count 32

wheels=("$src"/build/tensorrt_llm-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
  echo "glm5_hpc: expected exactly one wheel in $src/build, found: ${wheels[*]}" >&2
  exit 1
fi
partial=/shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk.partial-$SLURM_JOB_ID
mkdir -p "$partial"
cp "${wheels[0]}" "$partial/"
if ! mv -T "$partial" /shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk 2>/dev/null; then  # --rebuild: replace the cached wheel
  old=/shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk.old-$SLURM_JOB_ID
  mv -T /shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk "$old" && mv -T "$partial" /shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk && rm -rf "$old"
fi
echo "glm5_hpc: wheel published to "/shared/glm5/workdir/wheels/kkkkkkkkkkkkkkkkkkkk
