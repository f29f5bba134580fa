#!/usr/bin/env bash
# glm5_hpc stage build-wheel (deployment @@{deployment}, run @@{run_id}):
# clone the TensorRT-LLM branch, apply the recipe's C++ fixes, build the wheel in the container
# (recipe Steps 4-5), publish it to the wheel cache.
set -euo pipefail
src=@@{run_dir}/src
rm -rf "$src"
@@{lfs_setup}
git clone --quiet --branch @@{branch} --single-branch @@{repo} "$src"
git -C "$src" checkout --quiet --detach @@{commit}
@@{python} -m glm5_hpc patch-source "$src"
@@{preflight}

@@{runtime}
in_runtime "$src" python3 scripts/build_wheel.py @@{build_flags}

wheels=("$src"/build/tensorrt_llm-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
  echo "glm5_hpc: expected exactly one wheel in $src/build, found: ${wheels[*]}" >&2
  exit 1
fi
partial=@@{wheel_dir}.partial-$SLURM_JOB_ID
mkdir -p "$partial"
cp "${wheels[0]}" "$partial/"
if ! mv -T "$partial" @@{wheel_dir} 2>/dev/null; then  # --rebuild: replace the cached wheel
  old=@@{wheel_dir}.old-$SLURM_JOB_ID
  mv -T @@{wheel_dir} "$old" && mv -T "$partial" @@{wheel_dir} && rm -rf "$old"
fi
echo "glm5_hpc: wheel published to "@@{wheel_dir}
