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

# Container runtime: pyxis/enroot. The container runs as a job step (srun), so Slurm stops it
# with the job; a named container keeps what a step installed for the job's later steps.
set -a; . /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/env.sh; set +a
pyxis=(--container-image='nvcr.io#nvidia/tensorrt-llm/release:1.3.0rc3' --container-name=glm5-glm5-build-wheel --container-mounts=/shared/models:/workspace/scratch,/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd:/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd,/shared/glm5/workdir/wheels:/shared/glm5/workdir/wheels:ro,/shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc:/opt/glm5_hpc/glm5_hpc:ro,/shared/glm5/venv/lib/python3.11/site-packages/jobs:/opt/glm5_hpc/jobs:ro )
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  srun --ntasks=1 "${pyxis[@]}" --container-workdir="$workdir" "$@"
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
