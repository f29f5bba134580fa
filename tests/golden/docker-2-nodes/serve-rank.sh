#!/usr/bin/env bash
# glm5_hpc serve stage, one MPI rank of a server across nodes (deployment glm5, run 20260101-000000-abcd):
# each srun task runs this under jobs/rank.py, in a container of its own. Argument: serve-container.sh's mode.
set -euo pipefail
# Container runtime: docker-compatible CLI (docker).
# scancel does not reach a container (its daemon or conmon owns it), so stop and remove it on
# every exit path, or the GPUs stay held by an orphan. Where no trap runs (the job killed by
# SIGKILL: the OOM killer, Slurm after KillWait), the container's command runs under
# lifeline.py, which stops it once the job's stage process, holding $GLM5_HPC_LIFELINE, is gone.
container=glm5-glm5-serve$([[ ${SLURM_PROCID:-0} == 0 ]] || echo "-r$SLURM_PROCID")-$SLURM_JOB_ID
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
    --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 --network host -e GLM5_SERVE_PORT -e SLURM_JOB_ID -e SLURM_STEP_ID -e SLURM_PROCID -e SLURM_LOCALID -e SLURM_NODEID -e SLURM_NTASKS -e SLURM_NNODES -e SLURMD_NODENAME -v /shared/models:/workspace/scratch -v /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd:/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd -v /shared/glm5/workdir/wheels:/shared/glm5/workdir/wheels:ro -v /shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc:/opt/glm5_hpc/glm5_hpc:ro -v /shared/glm5/venv/lib/python3.11/site-packages/jobs:/opt/glm5_hpc/jobs:ro --env-file /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/container.env -w "$workdir" nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3 \
    python3 /opt/glm5_hpc/jobs/lifeline.py /run/glm5_hpc.lifeline -- "$@" &
  wait $!
}

in_runtime /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd bash /shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/serve-container.sh "$@"
