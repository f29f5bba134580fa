# Container runtime: pyxis/enroot. The container runs as a job step (srun), so Slurm stops it
# with the job; a named container keeps what a step installed for the job's later steps.
set -a; . @@{env_sh}; set +a
pyxis=(--container-image=@@{image} --container-name=@@{container_prefix} --container-mounts=@@{mounts} @@{run_flags})
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  srun --ntasks=1 "${pyxis[@]}" --container-workdir="$workdir" "$@"
}
