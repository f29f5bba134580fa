# Container runtime: docker-compatible CLI (@@{binary}).
# scancel does not reach a container (its daemon or conmon owns it), so stop and remove it on
# every exit path, or the GPUs stay held by an orphan. Where no trap runs (the job killed by
# SIGKILL: the OOM killer, Slurm after KillWait), the container's command runs under
# lifeline.py, which stops it once the job's stage process, holding $GLM5_HPC_LIFELINE, is gone.
container=@@{container_name}
cleanup() {
  @@{binary} stop -t 5 "$container" >/dev/null 2>&1 || true
  @@{binary} rm -f "$container" >/dev/null 2>&1 || true
}
remove_stale() {  # containers of this deployment whose job has left the queue (a killed job, a rebooted node)
  local queued c
  queued=" $(squeue -h -u "$(id -un)" -o %i | tr '\n' ' ') " || return 0  # no answer from Slurm: remove nothing
  for c in $(@@{binary} ps -a --filter label=glm5_hpc.cluster="$SLURM_CLUSTER_NAME" \
               --filter label=glm5_hpc.deployment=@@{deployment} --format '{{.Names}}'); do
    case "$queued" in
      *" ${c##*-} "*) ;;
      *) echo "glm5_hpc: removing container $c: its job ${c##*-} is no longer in the queue"
         @@{binary} rm -f "$c" >/dev/null 2>&1 || true ;;
    esac
  done
}
trap cleanup EXIT
trap 'trap "" TERM INT; cleanup; exit 143' TERM INT
cleanup  # a requeued job may find its previous container
remove_stale
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  @@{binary} run --rm --init --name "$container" --label glm5_hpc.cluster="$SLURM_CLUSTER_NAME" \
    --label glm5_hpc.deployment=@@{deployment} --label glm5_hpc.job="$SLURM_JOB_ID" -v "$GLM5_HPC_LIFELINE:/run/glm5_hpc.lifeline" \
    @@{run_flags} @@{mounts} --env-file @@{env_file} -w "$workdir" @@{image} \
    python3 @@{lifeline} /run/glm5_hpc.lifeline -- "$@" &
  wait $!
}
