# Container runtime: apptainer. The container is a child process of this job, so scancel stops it;
# --writable-tmpfs lets pip install the wheel and patch flashinfer in a throwaway overlay.
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  @@{binary} exec --nv --writable-tmpfs --bind @@{mounts} --env-file @@{env_sh} --pwd "$workdir" @@{run_flags} @@{image} "$@"
}
