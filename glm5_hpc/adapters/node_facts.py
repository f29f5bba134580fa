"""What a node and a checkpoint are, read from the machine: the GPUs nvidia-smi reports (narrowed to
the job's CUDA_VISIBLE_DEVICES) and a checkpoint's precision and weight bytes (config.json and the
files' sizes: a weight file is never opened)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from glm5_hpc.domain.checkpoint import Precision, precision_of, weight_bytes
from glm5_hpc.domain.gpu_preflight import QUERY, Gpu, parse_query
from glm5_hpc.errors import Glm5Error, InputError


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


def checkpoint_facts(model_dir: Path) -> tuple[Precision, int]:
    """The checkpoint's precision (config.json) and the bytes of its weight files (their sizes
    only: a weight file is never opened)."""
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
        precision = precision_of(cfg if isinstance(cfg, dict) else {})
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise InputError(f"GPU preflight: cannot tell the precision of {model_dir / 'config.json'}: {exc}") from None
    sizes = {e.name: e.stat().st_size for e in os.scandir(model_dir) if e.is_file()}
    return precision, weight_bytes(sizes)
