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

# Container runtime: docker-compatible CLI (docker).
# scancel does not reach a container (its daemon or conmon owns it), so stop and remove it on
# every exit path, or the GPUs stay held by an orphan. Where no trap runs (the job killed by
# SIGKILL: the OOM killer, Slurm after KillWait), the container's command runs under
# lifeline.py, which stops it once the job's stage process, holding $GLM5_HPC_LIFELINE, is gone.
container=glm5-glm5-build-wheel-$SLURM_JOB_ID
cleanup() {
  docker stop -t 5 "$container" >/dev/null 2>&1 || true
  docker rm -f "$container" >/dev/null 2>&1 || true
}
remove_stale() {  # containers of this deployment whose job has left the queue (a killed job, a rebooted node)
  local queued c
  queued=" $(squeue -h -u "$(id -un)" -o %i | tr '\n' ' ') " || return 0  # no answer from Slurm: remove nothing
  for c in $(docker ps -a --filter label=glm5_hpc.cluster="$SLURM_CLUSTER_NAME" \
               --filter label=glm5_hpc.deployment=glm5 --format '{{.Names}}'); do
    case "$queued" in
      *" ${c##*-} "*) ;;
      *) echo "glm5_hpc: removing container $c: its job ${c##*-} is no longer in the queue"
         docker rm -f "$c" >/dev/null 2>&1 || true ;;
    esac
  done
}
trap cleanup EXIT
trap 'trap "" TERM INT; cleanup; exit 143' TERM INT
cleanup  # a requeued job may find its previous container
remove_stale
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  docker run --rm --init --name "$container" --label glm5_hpc.cluster="$SLURM_CLUSTER_NAME" \
    --label glm5_hpc.deployment=glm5 --label glm5_hpc.job="$SLURM_JOB_ID" -v "$GLM5_HPC_LIFELINE:/run/glm5_hpc.lifeline" \
    --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 --network host -v /shared/models:/workspace/scratch -v /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd:/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd -v /shared/glm5/workdir/wheels:/shared/glm5/workdir/wheels:ro -v /shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc:/opt/glm5_hpc/glm5_hpc:ro -v /shared/glm5/venv/lib/python3.11/site-packages/jobs:/opt/glm5_hpc/jobs:ro --env-file /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/container.env -w "$workdir" nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3 \
    python3 /opt/glm5_hpc/jobs/lifeline.py /run/glm5_hpc.lifeline -- "$@" &
  wait $!
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
