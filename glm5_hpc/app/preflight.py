"""`glm5_hpc preflight`: run on a build or serve node before the container starts; refuses a node
whose GPUs cannot run the job (count, compute capability for the checkpoint's precision and the
build, memory for its weights)."""

from __future__ import annotations

from pathlib import Path

from glm5_hpc.adapters.node_facts import checkpoint_facts, visible_gpus
from glm5_hpc.domain.gpu_preflight import problems


def preflight(min_gpus: int, cuda_arch: str | None, model_dir: Path | None, nvidia_smi: str = "nvidia-smi") -> list[str]:
    gpus = visible_gpus(nvidia_smi)
    precision, weights = checkpoint_facts(model_dir) if model_dir else (None, 0)
    return problems(gpus, min_gpus, cuda_arch, precision, weights)
