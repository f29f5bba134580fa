"""GPU preflight: parse nvidia-smi and refuse a node that cannot run the build or the server. Pure.

NVFP4 needs Blackwell (compute capability >= 10.0), FP8 needs 8.9 or later (Hopper: 9.0); kernels
built for `cuda_architectures "100"` run only on SM100; tensor parallelism needs at least tp_size
visible GPUs; the checkpoint's weights must fit in their memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glm5_hpc.domain.checkpoint import MIN_COMPUTE_CAP, Precision

QUERY = ["--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader,nounits"]
WEIGHTS_MAX_SHARE = 0.9  # of the GPUs' memory: the rest is for activations and the KV cache
_NEEDS = {"nvfp4": "NVFP4 needs Blackwell (compute capability >= 10.0, e.g. B200)",
          "fp8": "FP8 needs compute capability >= 8.9 (Hopper or later, e.g. H100, H200, B200)",
          "bf16": "BF16 needs compute capability >= 8.0"}  # fmt: skip
_ARCH = re.compile(r"^(\d+)(\d)(?:a|f)?(?:-real|-virtual)?$")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_cap: tuple[int, int]
    memory_mib: int


def parse_query(text: str) -> list[Gpu]:
    """Parse `nvidia-smi QUERY` output: `0, NVIDIA H100 80GB HBM3, 9.0, 81559` per line."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        major, _, minor = parts[2].partition(".")
        memory = parts[3].split()[0]
        gpus.append(Gpu(int(parts[0]), parts[1], (int(major), int(minor or 0)), int(memory)))
    return gpus


def built_for(cuda_architectures: str) -> set[tuple[int, int]] | None:
    """Compute capabilities a build for `cuda_architectures` runs on; None for "all"/"native"."""
    if cuda_architectures in ("all", "all-major", "native"):
        return None
    caps = set()
    for arch in cuda_architectures.replace(",", ";").split(";"):
        m = _ARCH.fullmatch(arch.strip())
        if m:
            caps.add((int(m.group(1)), int(m.group(2))))
    return caps or None


def problems(
    gpus: list[Gpu], min_gpus: int, cuda_architectures: str | None, precision: Precision | None, weight_bytes: int = 0
) -> list[str]:
    found = ", ".join(f"{g.index}: {g.name} (compute capability {g.compute_cap[0]}.{g.compute_cap[1]})" for g in gpus)
    out = []
    if len(gpus) < min_gpus:
        out.append(f"{len(gpus)} GPU(s) visible, {min_gpus} needed (serve.tp_size); found: {found or 'none'}")
    if precision is not None:
        weak = [g for g in gpus if g.compute_cap < MIN_COMPUTE_CAP[precision]]
        if weak:
            out.append(
                f"{_NEEDS[precision]}; this node has {found}. Use a partition with such GPUs (stages.*.partition / gpu_type)"
            )
    memory = sum(g.memory_mib for g in gpus) * 2**20
    if weight_bytes and gpus and len(gpus) >= min_gpus and weight_bytes > WEIGHTS_MAX_SHARE * memory:
        out.append(
            f"the checkpoint's weights ({weight_bytes / 1e9:.0f} GB) do not fit in {len(gpus)} GPU(s) of "
            f"{memory / 1e9:.0f} GB together (at most {WEIGHTS_MAX_SHARE:.0%} of it for weights): "
            "use GPUs with more memory, more GPUs, or a smaller precision"
        )
    caps = built_for(cuda_architectures) if cuda_architectures else None
    if caps is not None:
        off = [g for g in gpus if g.compute_cap not in caps]
        if off:
            want = ", ".join(f"{a}.{b}" for a, b in sorted(caps))
            out.append(
                f"recipe.build.cuda_architectures {cuda_architectures!r} builds for compute capability {want}; "
                f"this node has {found}"
            )
    return out
