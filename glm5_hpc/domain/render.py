"""Render a run's stage scripts, serve config and container env file from the `sbatch/`
templates and a profile. Pure: the same function backs `glm5_hpc render` and `submit`.

Every value is shell-quoted here; the profile validator has already restricted it to safe characters.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from string import Template
from typing import Any

import yaml

from glm5_hpc.domain.names import BUILD, PREP, SERVE, job_name
from glm5_hpc.domain.plan import RunPaths
from glm5_hpc.domain.profile import Profile

RUNTIMES = ("docker", "pyxis", "apptainer", "bare")
TEMPLATES = (
    "prep-model.sh", "build-wheel.sh", "serve.sh", "serve-rank.sh", "serve-container.sh", *(f"runtime-{r}.sh" for r in RUNTIMES),
)  # fmt: skip
TOOL_MOUNT = PurePosixPath("/opt/glm5_hpc")
LIFELINE_ENV = "GLM5_HPC_LIFELINE"  # the stage process's lock file (jobs/lifeline.py)
PORT_ENV = "GLM5_SERVE_PORT"  # set by the serve stage at start (serve.port, or a free port for "auto")
PORT_REF = f'"${PORT_ENV}"'  # the one word of serve_argv the shell must expand
# what a rank's container needs of its srun task: who it is in the MPI world (TensorRT-LLM's launcher reads them)
RANK_ENV = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_NTASKS", "SLURM_NNODES",
            "SLURMD_NODENAME")  # fmt: skip


class _ScriptTemplate(Template):
    delimiter = "@@"


@dataclass(frozen=True)
class RenderContext:
    deployment: str
    paths: RunPaths
    python: str  # interpreter that runs glm5_hpc on the compute nodes (shared storage)
    tool_packages: Mapping[str, str]  # package name -> directory, mounted into the serve container
    commit: str
    wheel_key: str
    precision: str = ""  # the checkpoint's (model.precision, or read from its config.json at submit)


def q(value: object) -> str:
    return shlex.quote(str(value))


MOE_FOR_PRECISION = {"nvfp4": "TRTLLM", "fp8": "DEEPGEMM"}  # NVIDIA's GLM-5 guide; BF16: TensorRT-LLM's default


def moe_backend(profile: Profile, precision: str) -> str | None:
    backend = profile.serve.moe_backend
    return MOE_FOR_PRECISION.get(precision) if backend == "auto" else backend


def serve_config(profile: Profile, precision: str = "") -> dict[str, Any]:
    """The serve YAML: the recipe's Step 8 for source-build, NVIDIA's GLM-5 guide for stock (the
    profile's defaults per variant), each key from the profile key docs/serve-config.md names."""
    s = profile.serve
    doc: dict[str, Any] = {}
    if s.sparse_attention is not None:
        doc["sparse_attention_config"] = s.sparse_attention.model_dump()
    doc["kv_cache_config"] = s.kv_cache.model_dump(exclude_none=True)
    doc["enable_chunked_prefill"] = s.enable_chunked_prefill
    if s.cuda_graph is not None:
        doc["cuda_graph_config"] = s.cuda_graph.model_dump()
    if s.enable_attention_dp is not None:
        doc["enable_attention_dp"] = s.enable_attention_dp
    if s.stream_interval is not None:
        doc["stream_interval"] = s.stream_interval
    if (backend := moe_backend(profile, precision)) is not None:
        doc["moe_config"] = {"backend": backend}
    if s.mtp_layers:
        doc["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": s.mtp_layers}
    if s.prometheus_metrics:
        doc["return_perf_metrics"] = True
    return {**doc, **s.extra_config}


def model_in_container(profile: Profile) -> PurePosixPath:
    if profile.container.runtime == "bare":
        return profile.model_path
    return PurePosixPath(profile.container.model_mount) / profile.model_path.name


def serve_argv(profile: Profile, config_path: PurePosixPath) -> list[str]:
    s = profile.serve
    argv = [
        str(model_in_container(profile)),
        "--host", str(s.host), "--port", PORT_REF,
        "--tp_size", str(s.tp_size),
        *(["--ep_size", str(s.ep_size)] if s.ep_size else []),
        "--max_batch_size", str(s.max_batch_size),
        "--max_num_tokens", str(s.max_num_tokens),
    ]  # fmt: skip
    if s.trust_remote_code:
        argv.append("--trust_remote_code")
    return [*argv, "--extra_llm_api_options", str(config_path)]


def env_file(profile: Profile) -> str:
    """docker --env-file format: KEY=VALUE per line, taken literally (no quoting, no expansion)."""
    return "".join(f"{k}={v}\n" for k, v in sorted(profile.container.env.items()))


def env_sh(profile: Profile) -> str:
    """The same variables as shell assignments (sourced by pyxis/bare, apptainer --env-file)."""
    return "".join(f"{k}={q(v)}\n" for k, v in sorted(profile.container.env.items()))


def tool_dir(profile: Profile, paths: RunPaths) -> PurePosixPath:
    """Where the tool's stdlib-only packages appear for the in-container flashinfer patch."""
    return paths.scripts / "tool" if profile.container.runtime == "bare" else TOOL_MOUNT


def _mounts(profile: Profile, ctx: RenderContext) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) for every runtime that mounts."""
    p = ctx.paths
    wheels = str(p.work_dir / "wheels")
    mounts = [
        (str(profile.model_path.parent), profile.container.model_mount, False),
        (str(p.run_dir), str(p.run_dir), False),
        (wheels, wheels, True),
    ]
    return mounts + [(d, str(TOOL_MOUNT / name), True) for name, d in sorted(ctx.tool_packages.items())]


def pyxis_image(image: str) -> str:
    """pyxis/enroot write the registry separator as '#': nvcr.io/nvidia/x:tag -> nvcr.io#nvidia/x:tag."""
    if "#" in image or image.startswith("/"):
        return image
    first, sep, rest = image.partition("/")
    return f"{first}#{rest}" if sep and ("." in first or ":" in first or first == "localhost") else image


def _runtime(profile: Profile, ctx: RenderContext, stage: str, templates: Mapping[str, str]) -> str:
    c = profile.container
    mounts = _mounts(profile, ctx)
    prefix = q(job_name(ctx.deployment, stage))
    # a server across nodes has a container per rank: rank 0's keeps the one-node name the watcher knows
    across = stage == SERVE and profile.stages.serve.nodes > 1
    ranked = '$([[ ${SLURM_PROCID:-0} == 0 ]] || echo "-r$SLURM_PROCID")' if across else ""
    values = {
        "binary": q(c.binary), "container_prefix": prefix, "container_name": f"{prefix}{ranked}-$SLURM_JOB_ID",
        "image": q(c.image),
        "run_flags": shlex.join(c.run_flags), "env_sh": q(ctx.paths.scripts / "env.sh"),
        "deployment": q(ctx.deployment), "lifeline": q(TOOL_MOUNT / "jobs" / "lifeline.py"),
    }  # fmt: skip
    if c.runtime == "docker":
        flags = list(c.run_flags) + (["--network", "host"] if c.network == "host" else [])
        volumes = [a for src, dst, ro in mounts for a in ("-v", f"{src}:{dst}" + (":ro" if ro else ""))]
        if stage == SERVE:  # the port and the secrets' names; values come from the stage's environment
            flags += ["-e", PORT_ENV]
            if profile.stages.serve.nodes > 1:
                flags += [arg for name in RANK_ENV for arg in ("-e", name)]
            flags += [arg for name in sorted(c.secrets) for arg in ("-e", name)]
        publish = f' -p "${PORT_ENV}:${PORT_ENV}"' if c.publish and stage == SERVE else ""
        values.update(
            run_flags=shlex.join(flags) + publish,
            mounts=shlex.join(volumes),
            env_file=q(ctx.paths.scripts / "container.env"),
        )
    elif c.runtime in ("pyxis", "apptainer"):
        values["mounts"] = q(",".join(f"{src}:{dst}" + (":ro" if ro else "") for src, dst, ro in mounts))
        if c.runtime == "pyxis":
            values["image"] = q(pyxis_image(c.image))
    else:
        tools = tool_dir(profile, ctx.paths)
        values["tool_dir"] = q(tools)
        values["tool_links"] = "\n".join(f"ln -sfn {q(d)} {q(tools / n)}" for n, d in sorted(ctx.tool_packages.items()))
    return _ScriptTemplate(templates[f"runtime-{c.runtime}.sh"]).substitute(values)


def _preflight(profile: Profile, ctx: RenderContext, stage: str) -> str:
    if not profile.gpu_preflight:
        return ": # GPU preflight off (profile gpu_preflight: false)"
    if stage == BUILD:
        build = profile.stages.build_wheel
        if build is None or not build.gpus:
            return ": # GPU preflight: the build stage requests no GPU"
        args = ["--cuda-arch", profile.recipe.build.cuda_architectures]
    else:
        args = ["--min-gpus", str(profile.serve.tp_size // profile.stages.serve.nodes), "--model", str(profile.model_path)]
        if profile.recipe.variant == "source-build":
            args += ["--cuda-arch", profile.recipe.build.cuda_architectures]
    check = f"{q(ctx.python)} -m glm5_hpc preflight {shlex.join(args)}"
    nodes = profile.stages.serve.nodes if stage == SERVE else 1
    return check if nodes == 1 else f"srun --nodes={nodes} --ntasks-per-node=1 {check}  # every node of the server"


def _serve_launch(profile: Profile, ctx: RenderContext) -> str:
    """How serve.sh starts the server: in one container, or as tp_size MPI ranks over stages.serve.nodes nodes
    (NVIDIA's multi-node trtllm-serve: srun --mpi=pmix, rank 0 serves HTTP)."""
    p, nodes, runtime = ctx.paths, profile.stages.serve.nodes, profile.container.runtime
    if nodes == 1:
        return f"in_runtime {q(p.run_dir)} bash {q(p.scripts / 'serve-container.sh')}"
    ranks = f"srun --mpi=pmix --nodes={nodes} --ntasks-per-node={profile.ranks_per_node} --kill-on-bad-exit=1"
    lines = [f"# one server over {nodes} nodes, {profile.ranks_per_node} MPI rank(s) on each; any rank ending ends them all"]
    if runtime == "pyxis":  # one named container per node: set it up once, then every rank of the node runs in it
        container = f'"${{pyxis[@]}}" --container-workdir={q(p.run_dir)} bash {q(p.scripts / "serve-container.sh")}'
        lines += [f"srun --nodes={nodes} --ntasks-per-node=1 {container} setup", f"exec {ranks} {container} serve"]
    else:  # a container per rank (the bare runtime: the node's environment, set up once per node)
        rank = f"{q(ctx.python)} -m jobs.rank {q(p.scripts / 'serve-rank.sh')}"
        if runtime == "bare":
            lines += [f"srun --nodes={nodes} --ntasks-per-node=1 {rank} setup", f"exec {ranks} {rank} serve"]
        else:
            lines.append(f"exec {ranks} {rank} all")
    return "\n".join(lines)


def _rank_lines(profile: Profile, ctx: RenderContext) -> dict[str, str]:
    """serve-container.sh's parts for a rank of a server across nodes (all empty on one node)."""
    if profile.stages.serve.nodes == 1:
        return {"mode": "", "setup": "", "rank": "", "launcher": ""}
    ranks = ctx.paths.ranks_dir
    return {
        "mode": "mode=${1:-all}  # all: set up and serve; setup: set up this node and stop; serve: set up already\n",
        "setup": "[[ $mode == serve ]] || ",
        "rank": (
            "[[ $mode != setup ]] || exit 0\n"
            f'mkdir -p {q(ranks)}/"$SLURM_JOB_ID" && echo "$SLURMD_NODENAME" > {q(ranks)}/"$SLURM_JOB_ID/$SLURM_PROCID"'
            "  # started\n"
        ),
        "launcher": "trtllm-llmapi-launch ",  # rank 0 runs trtllm-serve; every other rank a worker
    }


def _prep_flags(profile: Profile) -> list[str]:
    e = profile.model.edits
    off = [name for name, on in e.model_dump().items() if not on]
    return [arg for name in off for arg in ("--skip", name.replace("_", "-"))]


def _build_flags(profile: Profile) -> list[str]:
    b = profile.recipe.build
    flags = ["--fast_build"] if b.fast_build else []
    return [*flags, "--cuda_architectures", b.cuda_architectures, "--no-venv", "--job_count", str(b.job_count)]


def render_run(profile: Profile, ctx: RenderContext, templates: Mapping[str, str]) -> dict[str, str]:
    """Return {file name: content} for everything a run writes into its scripts directory."""
    p = ctx.paths
    wheel_dir = p.wheel_dir(ctx.wheel_key)
    common = {
        "deployment": q(ctx.deployment),
        "run_id": q(p.run_id),
        "run_dir": q(p.run_dir),
        "scripts": q(p.scripts),
        "python": q(ctx.python),
    }
    out: dict[str, str] = {}
    out[f"{PREP}.sh"] = _ScriptTemplate(templates["prep-model.sh"]).substitute(
        common, model_dir=q(profile.model_path), prep_flags=shlex.join(_prep_flags(profile))
    )
    if profile.recipe.variant == "source-build":
        src = profile.recipe.source
        out[f"{BUILD}.sh"] = _ScriptTemplate(templates["build-wheel.sh"]).substitute(
            common,
            lfs_setup="git lfs install --skip-repo" if src.lfs else ": # git-lfs not needed (profile recipe.source.lfs: false)",
            branch=q(src.branch),
            repo=q(src.repo),
            commit=q(ctx.commit),
            runtime=_runtime(profile, ctx, BUILD, templates),
            preflight=_preflight(profile, ctx, BUILD),
            build_flags=shlex.join(_build_flags(profile)),
            wheel_dir=q(wheel_dir),
        )
        install = f"pip install --no-deps --force-reinstall {q(wheel_dir)}/tensorrt_llm-*.whl"
    else:
        install = ": # stock variant: the image's own TensorRT-LLM serves GLM-5"
    runtime = _runtime(profile, ctx, SERVE, templates)
    across = profile.stages.serve.nodes > 1 and profile.container.runtime != "pyxis"  # the runtime lives in serve-rank.sh
    out[f"{SERVE}.sh"] = _ScriptTemplate(templates["serve.sh"]).substitute(
        common,
        runtime="# the container runtime: serve-rank.sh, in each rank's srun task\n" if across else runtime,
        preflight=_preflight(profile, ctx, SERVE),
        launch=_serve_launch(profile, ctx),
    )
    if across:
        out["serve-rank.sh"] = _ScriptTemplate(templates["serve-rank.sh"]).substitute(common, runtime=runtime)
    out["serve-container.sh"] = _ScriptTemplate(templates["serve-container.sh"]).substitute(
        common,
        **_rank_lines(profile, ctx),
        install_wheel=install,
        tool_mount=q(tool_dir(profile, p)),
        variant=q(profile.recipe.variant),
        image=q(profile.container.image),
        serve_args=" ".join(a if a == PORT_REF else q(a) for a in serve_argv(profile, p.scripts / "serve-config.yaml")),
    )
    declared = "" if profile.model.precision == "auto" else profile.model.precision
    out["serve-config.yaml"] = yaml.safe_dump(serve_config(profile, ctx.precision or declared), sort_keys=False)
    out["container.env"] = env_file(profile)
    out["env.sh"] = env_sh(profile)
    return out
