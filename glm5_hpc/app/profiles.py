"""`glm5_hpc profile init|validate|show`.

init asks the cluster (sinfo, the container tools on PATH, pyxis in srun) for partitions, GPU gres
types and counts, time limits and node sizes, and writes a commented profile to edit; it is
validated before it is written, so a fresh profile always loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from glm5_hpc.adapters.files import write_atomic
from glm5_hpc.adapters.shell import Shell
from glm5_hpc.domain.profile import RECIPE_DOCKER_FLAGS, Profile, parse_profile
from glm5_hpc.errors import Glm5Error, InputError

SINFO_FORMAT = "%P|%l|%G|%c|%m"
DEFAULT_SERVE_TIME = "04:00:00"


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_time: str  # Slurm [D-]HH:MM:SS, or "infinite"
    gpu_type: str | None
    gpus: int
    cpus: int
    mem_mb: int


def parse_sinfo(text: str) -> list[Partition]:
    """Parse `sinfo -h -o SINFO_FORMAT` (one line per partition and node configuration). Pure."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        name, limit, gres, cpus, mem = parts
        gpu_type, gpus = None, 0
        for item in gres.split(","):
            m = re.match(r"^gpu(?::([A-Za-z0-9_.-]+))?:(\d+)", item)
            if m:
                gpu_type, gpus = m.group(1), int(m.group(2))
        p = Partition(name.rstrip("*"), name.endswith("*"), limit, gpu_type, gpus, int(cpus.rstrip("+") or 1),
                      int(re.sub(r"\D", "", mem) or 1024))  # fmt: skip
        old = found.get(p.name)
        if old is None or p.gpus > old.gpus:
            found[p.name] = p
    return list(found.values())


def _slurm_time(limit: str) -> str:
    """A partition's limit as [D-]HH:MM:SS, capped at the recipe's 4 hours for serving."""
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return DEFAULT_SERVE_TIME
    days, _, rest = limit.rpartition("-")
    fields = [int(x) for x in rest.split(":")]
    while len(fields) < 3:
        fields.insert(0, 0)
    seconds = int(days or 0) * 86400 + fields[0] * 3600 + fields[1] * 60 + fields[2]
    seconds = min(seconds, 4 * 3600)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _describe(p: Partition) -> str:
    return f"{p.name} ({p.gpus} x {p.gpu_type or 'gpu'})" if p.gpus else p.name


def render_profile(name: str, partitions: list[Partition], tools: set[str], pyxis: bool, ssh: dict[str, Any] | None,
                   values: dict[str, str], gpu_preflight: bool) -> str:  # fmt: skip
    """The commented YAML for a detected cluster. Pure."""
    with_gpus = [p for p in partitions if p.gpus]
    if not with_gpus:
        raise InputError("no partition offers GPU gres (sinfo shows no gpu:TYPE:N); glm5_hpc needs GPU nodes for serving")
    # the GPU partition: named like one if possible, else the one with most GPUs that is not the default
    gpu = max(with_gpus, key=lambda p: ("gpu" in p.name.lower(), not p.default, p.gpus))
    cpu = next((p for p in partitions if p.default), None) or next((p for p in partitions if not p.gpus), gpu)
    if pyxis:
        runtime, binary, flags = "pyxis", "srun", []
    elif "docker" in tools:
        runtime, binary, flags = "docker", "docker", list(RECIPE_DOCKER_FLAGS)
    elif "podman" in tools:
        runtime, binary, flags = "docker", "podman", ["--gpus", "all", "--ipc=host"]
    elif tools & {"apptainer", "singularity"}:
        runtime, binary, flags = "apptainer", "apptainer" if "apptainer" in tools else "singularity", []
    else:
        runtime, binary, flags = "bare", "bash", []
    serve_mem = max(1024, gpu.mem_mb // 2)
    lines = [
        f"# glm5_hpc profile {name!r}, written by `glm5_hpc profile init` from what the cluster reported.",
        "# Check every value, then: glm5_hpc profile validate " + name + " && glm5_hpc doctor --profile " + name,
        "# Partitions seen: " + ", ".join(_describe(p) for p in partitions),
    ]
    if ssh:
        lines += ["ssh:                      # commands run on this login node (glm5_hpc remote setup first)"]
        lines += [f"  {k}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                  for k, v in ssh.items()]  # fmt: skip
    lines += [
        f"work_dir: {values['work_dir']}          # shared storage, visible from login and compute nodes",
        f"gpu_preflight: {str(gpu_preflight).lower()}            # nvidia-smi check on build and serve nodes",
        "model:",
        f"  path: {values['model']}     # the GLM-5 NVFP4 checkpoint directory",
        "recipe:",
        f"  variant: {values['variant']}",
        "  source:",
        f"    repo: {values['repo']}",
        f"    branch: {values['branch']}",
        f"    lfs: {str(values['repo'].startswith('https://')).lower()}",
        "container:",
        f"  runtime: {runtime}            # detected: {', '.join(sorted(tools)) or 'no container tool'}"
        + ("; pyxis in srun" if pyxis else ""),
        f"  binary: {binary}",
        f"  image: {values['image']}",
        f"  run_flags: {yaml.safe_dump(flags, default_flow_style=True).strip()}"
        + (
            "   # the recipe adds --ulimit memlock=-1 --ulimit stack=67108864 where the nodes grant them"
            if binary == "podman"
            else ""
        ),
        "  network: host            # endpoint = the node's address and serve.port",
        "stages:",
        f'  prep-model: {{partition: {cpu.name}, time: "00:15:00", cpus: 1, mem: 1G}}',
        f'  build-wheel: {{partition: {gpu.name}, time: "{_slurm_time(gpu.max_time).replace("04:00:00", "01:30:00")}", '
        f"cpus: {max(1, min(32, gpu.cpus // 2))}, mem: {max(1024, gpu.mem_mb // 4)}M}}",
        f'  serve: {{partition: {gpu.name}, time: "{_slurm_time(gpu.max_time)}", cpus: {max(1, gpu.cpus // 2)}, '
        f"mem: {serve_mem}M, gpus: {gpu.gpus}" + (f", gpu_type: {gpu.gpu_type}}}" if gpu.gpu_type else "}"),
        "serve:",
        f"  tp_size: {gpu.gpus}",
        "  host: 0.0.0.0            # reachable from the login node, and so by every cluster user",
        "  port: auto               # a free port on the node",
        "health:",
        "  ready_timeout_s: 3600    # model load plus warmup",
    ]
    return "\n".join(lines) + "\n"


def detect(shell: Shell) -> tuple[list[Partition], set[str], bool]:
    r = shell.run(["sinfo", "-h", "-o", SINFO_FORMAT], timeout_s=60)
    if r.rc != 0:
        raise Glm5Error(f"sinfo failed on {shell.where} (rc={r.rc}): {r.stderr.strip()[-300:]}")
    # an engine counts only if it answers (a docker client without its daemon does not)
    probe = (
        "for b in docker podman; do $b info >/dev/null 2>&1 && echo $b; done; "
        "for b in apptainer singularity; do command -v $b >/dev/null && echo $b; done"
    )
    tools_out = shell.run(["sh", "-c", probe], timeout_s=60)
    srun_help = shell.run(["srun", "--help"], timeout_s=60)
    return parse_sinfo(r.stdout), set(tools_out.stdout.split()), "--container-image" in srun_help.stdout


def init(name: str, shell: Shell, output: Path, values: dict[str, str], ssh: dict[str, Any] | None,
         gpu_preflight: bool, force: bool) -> Path:  # fmt: skip
    if output.exists() and not force:
        raise InputError(f"{output} exists; choose another name or pass --force to replace it")
    partitions, tools, pyxis = detect(shell)
    text = render_profile(name, partitions, tools, pyxis, ssh, values, gpu_preflight)
    parse_profile(text, str(output), name)  # never write a profile that does not load
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(output, text.encode(), 0o644)
    return output


def show(profile: Profile) -> str:
    doc = profile.model_dump(mode="json", by_alias=True, exclude={"source"})
    return f"# {profile.source}, with every default filled in\n" + yaml.safe_dump(doc, sort_keys=False)
