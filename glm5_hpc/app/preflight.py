"""`glm5_hpc preflight`: run on a build or serve node before the container starts; refuses a node
whose GPUs cannot run the job (count, compute capability, NVFP4)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from glm5_hpc.domain.gpu_preflight import QUERY, Gpu, parse_query, problems
from glm5_hpc.errors import Glm5Error


def visible_gpus(nvidia_smi: str = "nvidia-smi") -> list[Gpu]:
    """GPUs nvidia-smi reports, narrowed to CUDA_VISIBLE_DEVICES when Slurm set it."""
    try:
        out = subprocess.run([nvidia_smi, *QUERY], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise Glm5Error(
            f"GPU preflight on {socket.gethostname()}: {nvidia_smi} not found; is this a GPU node? "
            "(a profile for a cluster without nvidia-smi can set gpu_preflight: false)"
        ) from None
    if out.returncode != 0:
        raise Glm5Error(
            f"GPU preflight on {socket.gethostname()}: {nvidia_smi} failed (rc={out.returncode}): {out.stderr.strip()[-300:]}"
        )
    gpus = parse_query(out.stdout)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible and all(v.strip().isdigit() for v in visible.split(",")):
        wanted = {int(v) for v in visible.split(",")}
        gpus = [g for g in gpus if g.index in wanted]
    return gpus


def is_nvfp4(model_dir: Path) -> bool:
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    quant = cfg.get("quantization_config") if isinstance(cfg, dict) else None
    return isinstance(quant, dict) and str(quant.get("quant_algo", "")).upper() == "NVFP4"


def preflight(min_gpus: int, cuda_arch: str | None, model_dir: Path | None, nvidia_smi: str = "nvidia-smi") -> list[str]:
    gpus = visible_gpus(nvidia_smi)
    return problems(gpus, min_gpus, cuda_arch, nvfp4=bool(model_dir and is_nvfp4(model_dir)))
