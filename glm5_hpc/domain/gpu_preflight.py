"""GPU preflight: parse nvidia-smi and refuse a node that cannot run the build or the server. Pure.

NVFP4 needs Blackwell (compute capability >= 10.0); kernels built for `cuda_architectures "100"`
run only on SM100; tensor parallelism needs at least tp_size visible GPUs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUERY = ["--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader,nounits"]
NVFP4_MIN_CC = (10, 0)
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


def problems(gpus: list[Gpu], min_gpus: int, cuda_architectures: str | None, nvfp4: bool) -> list[str]:
    found = ", ".join(f"{g.index}: {g.name} (compute capability {g.compute_cap[0]}.{g.compute_cap[1]})" for g in gpus)
    out = []
    if len(gpus) < min_gpus:
        out.append(f"{len(gpus)} GPU(s) visible, {min_gpus} needed (serve.tp_size); found: {found or 'none'}")
    if nvfp4:
        weak = [g for g in gpus if g.compute_cap < NVFP4_MIN_CC]
        if weak:
            out.append(
                f"NVFP4 needs Blackwell (compute capability >= 10.0, e.g. B200); this node has {found}. "
                "Use a partition with B200 GPUs (stages.*.partition / gpu_type)"
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
