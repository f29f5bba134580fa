# Container runtime: docker-compatible CLI (@@{binary}).
# scancel does not reach a container (its daemon or conmon owns it), so stop and remove it on
# every exit path, or the GPUs stay held by an orphan.
container=@@{container_prefix}-$SLURM_JOB_ID
cleanup() {
  @@{binary} stop -t 5 "$container" >/dev/null 2>&1 || true
  @@{binary} rm -f "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'trap "" TERM INT; cleanup; exit 143' TERM INT
cleanup  # a requeued job may find its previous container
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  @@{binary} run --rm --init --name "$container" @@{run_flags} @@{mounts} --env-file @@{env_file} -w "$workdir" @@{image} "$@" &
  wait $!
}
