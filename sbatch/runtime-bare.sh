# Runtime: bare (no container). Commands run on the node in this job's environment, which must
# provide the image's software (python3 with pip, TensorRT-LLM's dependencies, flashinfer).
mkdir -p @@{tool_dir}
@@{tool_links}
in_runtime() {  # WORKDIR COMMAND...
  local workdir=$1; shift
  (cd "$workdir" && set -a && . @@{env_sh} && set +a && exec "$@")
}
