"""Cluster profile: the schema, its defaults (the recipe's values) and validation.

Every string that reaches an `#SBATCH` line or a shell script is checked against an allow-list
pattern here, not merely quoted later (sbatch's parser is not bash: FACTS.md).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from glm5_hpc.errors import ProfileError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9_.+@=/-]*$")
_IMAGE = re.compile(r"^(/[A-Za-z0-9_.+@=/-]{1,255}|[A-Za-z0-9][A-Za-z0-9_.:/@#+-]{0,255})$")
_GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
_REPO = re.compile(r"^(https://[A-Za-z0-9_.:/@%+-]+|/[A-Za-z0-9_.+@=/-]*)$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FLAG = re.compile(r"^[A-Za-z0-9_.,:=/@+%-]{1,512}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")
MAX_REPLICAS = 32  # serve.replicas, submit --replicas, scale --replicas
_CUDA_ARCH = re.compile(r"^[0-9a-z;-]{1,64}$")
_NODES = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,\[\]-]{0,511}$")


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} (allowed: {pattern.pattern})")
        return value

    return AfterValidator(check)


Name = Annotated[str, _matching(_NAME, "name")]
ClusterPath = Annotated[str, _matching(_PATH, "absolute path without spaces or shell characters")]
Image = Annotated[str, _matching(_IMAGE, "container image reference")]
GitRef = Annotated[str, _matching(_GIT_REF, "git branch or commit")]
Repo = Annotated[str, _matching(_REPO, "https URL or absolute path of a git repository")]
SlurmTime = Annotated[str, _matching(_TIME, "Slurm time limit [D-]HH:MM:SS")]
Mem = Annotated[str, _matching(_MEM, "Slurm memory size such as 64G")]
Flag = Annotated[str, _matching(_FLAG, "container run flag")]
Host = Annotated[str, _matching(_HOST, "host name or address")]
NodeList = Annotated[str, _matching(_NODES, "Slurm node list such as gpu[1-4],gpu7")]
EnvValue = Annotated[str, _matching(re.compile(r"^[^\n\r\x00]{0,4096}$"), "environment value (one line)")]


def _env_keys(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not _ENV_KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
    return env


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageResources(_Strict):
    partition: Name
    time: SlurmTime
    cpus: int = Field(ge=1, le=1024)
    mem: Mem
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_type: Name | None = None
    nodes: int = Field(default=1, ge=1, le=64)  # serve only: one server across this many nodes (MPI ranks on each)
    nodelist: NodeList | None = None  # sbatch --nodelist: only these nodes
    exclude: NodeList | None = None  # sbatch --exclude: never these nodes (a bad node, one kept for others)

    @property
    def time_minutes(self) -> int:
        m = _TIME.fullmatch(self.time)
        assert m is not None  # validated above
        days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        return max(1, days * 1440 + hours * 60 + minutes + (1 if seconds else 0))

    @property
    def gres(self) -> str | None:
        if not self.gpus:
            return None
        return f"gpu:{self.gpu_type}:{self.gpus}" if self.gpu_type else f"gpu:{self.gpus}"


class Stages(_Strict):
    prep_model: StageResources = Field(alias="prep-model")
    build_wheel: StageResources | None = Field(default=None, alias="build-wheel")
    serve: StageResources


class Slurm(_Strict):
    account: Name | None = None
    qos: Name | None = None


class ModelEdits(_Strict):
    architecture: bool = True
    rope: bool = True
    tokenizer_class: bool = True
    special_tokens_key: bool = True


class Model(_Strict):
    path: ClusterPath
    edits: ModelEdits = ModelEdits()
    # the checkpoint's weights; auto: read from its config.json (quantization_config) at submit
    precision: Literal["auto", "nvfp4", "fp8", "bf16"] = "auto"


class Source(_Strict):
    repo: Repo = "https://github.com/PerkzZheng/TensorRT-LLM.git"
    branch: GitRef = "user/perkzz/glm-flash-trtllm-gen"
    lfs: bool = True  # the real branch keeps *.a files in git-lfs


class Build(_Strict):
    cuda_architectures: Annotated[str, _matching(_CUDA_ARCH, "CUDA architecture list")] = "100"
    fast_build: bool = True
    job_count: int = Field(default=32, ge=1, le=1024)


class Recipe(_Strict):
    variant: Literal["source-build", "stock"] = "source-build"
    source: Source = Source()
    build: Build = Build()


_LOCAL_PATH = re.compile(r"^~?/?[A-Za-z0-9_.+@=/-]+$")
LocalPath = Annotated[str, _matching(_LOCAL_PATH, "path without spaces or shell characters")]
_JUMP = re.compile(r"^([A-Za-z0-9_.-]+@)?[A-Za-z0-9_.-]+(:\d{1,5})?$")


class Secret(_Strict):
    """Where a secret's value is read at run time, on the serve node; never copied anywhere else."""

    file: LocalPath | None = None  # preferred: a file readable only by you, on storage the node sees
    env: Annotated[str, _matching(_ENV_KEY, "environment variable name")] | None = None  # from the job's environment

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file: or env:")
        return self


def _secret_names(secrets: dict[str, Secret]) -> dict[str, Secret]:
    for key in secrets:
        if not _ENV_KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
    return secrets


RECIPE_DOCKER_FLAGS = ("--gpus", "all", "--ipc=host", "--ulimit", "memlock=-1", "--ulimit", "stack=67108864")
_RUNTIME_DEFAULTS: dict[str, dict[str, Any]] = {
    # binary, extra flags of the run command, network
    "docker": {"binary": "docker", "run_flags": RECIPE_DOCKER_FLAGS, "network": "bridge"},
    "pyxis": {"binary": "srun", "run_flags": (), "network": "host"},
    "apptainer": {"binary": "apptainer", "run_flags": (), "network": "host"},
    "bare": {"binary": "bash", "run_flags": (), "network": "host"},
}
_BINARIES = {"docker": ("docker", "podman"), "pyxis": ("srun",), "apptainer": ("apptainer", "singularity"), "bare": ("bash",)}


class Container(_Strict):
    """How build and serve commands run: docker (or podman), pyxis/enroot, apptainer, or bare on the node."""

    runtime: Literal["docker", "pyxis", "apptainer", "bare"] = "docker"
    binary: Literal["docker", "podman", "srun", "apptainer", "singularity", "bash"]
    image: Image = "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3"
    run_flags: tuple[Flag, ...]
    network: Literal["bridge", "host"]
    model_mount: ClusterPath = "/workspace/scratch"
    env: Annotated[dict[str, EnvValue], AfterValidator(_env_keys)] = Field(default_factory=dict)
    publish: bool = False  # bridge network: publish the serve port on the node, so the login node can reach it
    secrets: Annotated[dict[str, Secret], AfterValidator(_secret_names)] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _runtime_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        runtime = data.get("runtime", "docker")
        return {**_RUNTIME_DEFAULTS.get(str(runtime), _RUNTIME_DEFAULTS["docker"]), **data}

    @model_validator(mode="after")
    def _runtime_consistent(self) -> Container:
        if self.binary not in _BINARIES[self.runtime]:
            raise ValueError(
                f"container.binary {self.binary!r} does not fit runtime {self.runtime!r} "
                f"(use one of: {', '.join(_BINARIES[self.runtime])})"
            )
        if self.network == "bridge" and self.runtime != "docker":
            raise ValueError(f"container.network bridge needs runtime docker; {self.runtime} uses the host network")
        if self.publish and self.network != "bridge":
            raise ValueError("container.publish applies to the bridge network; with host networking the port is the node's")
        return self


class SparseAttention(_Strict):
    algorithm: Literal["dsa"] = "dsa"
    index_n_heads: int = Field(default=32, ge=1)
    index_head_dim: int = Field(default=128, ge=1)
    index_topk: int = Field(default=2048, ge=1)


class KvCache(_Strict):
    dtype: Literal["auto", "fp8", "nvfp4"] = "fp8"  # TensorRT-LLM's KvCacheConfig.dtype accepts these; others fail at load
    free_gpu_memory_fraction: float = Field(default=0.90, gt=0, le=1)
    enable_block_reuse: bool | None = None


class CudaGraph(_Strict):
    enable_padding: bool = False
    max_batch_size: int = Field(default=128, ge=1, le=4096)


# TensorRT-LLM's MoeConfig.backend choices (tensorrt_llm/llmapi/llm_args.py, the union over releases:
# AUTO, DENSEGEMM, MARLIN and MEGAMOE_DEEPGEMM exist in newer ones only). glm5_hpc's own "auto":
# TRTLLM for an NVFP4 checkpoint and DEEPGEMM for FP8 (NVIDIA's GLM-5 guide), TensorRT-LLM's default for BF16.
MoeBackend = Literal["auto", "AUTO", "CUTLASS", "CUTEDSL", "WIDEEP", "TRTLLM", "DEEPGEMM", "DENSEGEMM", "VANILLA", "TRITON",
                     "MARLIN", "MEGAMOE_DEEPGEMM"]  # fmt: skip

# NVIDIA's GLM-5 deployment guide (TensorRT-LLM >= 1.3.0rc8): the stock variant's serve defaults.
STOCK_SERVE: dict[str, Any] = {
    "max_batch_size": 128,
    "sparse_attention": None,  # DSA parameters are read from config.json
    "kv_cache": {"dtype": "fp8", "free_gpu_memory_fraction": 0.75, "enable_block_reuse": False},
    "cuda_graph": {"enable_padding": True, "max_batch_size": 128},
    "enable_attention_dp": False,
    "stream_interval": 10,
    "moe_backend": "auto",
}


MODELED_CONFIG_KEYS = {  # serve YAML keys glm5_hpc writes itself -> the profile key that sets each
    "sparse_attention_config": "serve.sparse_attention",
    "kv_cache_config": "serve.kv_cache",
    "enable_chunked_prefill": "serve.enable_chunked_prefill",
    "cuda_graph_config": "serve.cuda_graph",
    "enable_attention_dp": "serve.enable_attention_dp",
    "stream_interval": "serve.stream_interval",
    "moe_config": "serve.moe_backend",
    "speculative_config": "serve.mtp_layers",
    "return_perf_metrics": "serve.prometheus_metrics",
}


def _extra_keys(extra: dict[str, Any]) -> dict[str, Any]:
    for key in extra:
        if not _ENV_KEY.fullmatch(str(key)):
            raise ValueError(f"{key!r} is not a TensorRT-LLM option name")
        if key in MODELED_CONFIG_KEYS:
            raise ValueError(f"{key} is set through the profile ({MODELED_CONFIG_KEYS[key]}); set it there")
    return extra


class Serve(_Strict):
    # copies of the server, each its own serve job on its own node(s), behind the router (router.enabled)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    tp_size: int = Field(default=8, ge=1, le=64)
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_num_tokens: int = Field(default=8192, ge=1)
    # bind address; default: 0.0.0.0 in a bridge container (reachable from the serve node only, unless
    # published), 127.0.0.1 with host networking. Anything wider is a choice: trtllm-serve has no API
    # key and unauthenticated control routes, so 0.0.0.0 on a host network hands them to every cluster user.
    host: Host | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | Literal["auto"] = 8000  # auto: a free port on the node at start
    trust_remote_code: bool = True
    sparse_attention: SparseAttention | None = SparseAttention()
    kv_cache: KvCache = KvCache()
    enable_chunked_prefill: bool = True
    ep_size: int | None = Field(default=None, ge=1, le=64)  # expert parallelism (the stock variant: tp_size)
    cuda_graph: CudaGraph | None = None
    enable_attention_dp: bool | None = None
    stream_interval: int | None = Field(default=None, ge=1, le=1024)
    moe_backend: MoeBackend | None = None
    mtp_layers: int | None = Field(default=None, ge=1, le=8)  # MTP speculative decoding (FP8 only, per the guide)
    # trtllm-serve's Prometheus endpoint (/prometheus/metrics), mounted with return_perf_metrics: true.
    # Nothing glm5_hpc runs ever reads /metrics: each read drains trtllm-serve's stats queue.
    prometheus_metrics: bool = False
    # Keys of the serve YAML (trtllm-serve --extra_llm_api_options) that the profile does not model,
    # written as given; a key the profile models is refused here (set it where it is modeled).
    extra_config: Annotated[dict[str, Any], AfterValidator(_extra_keys)] = Field(default_factory=dict)


class Health(_Strict):
    ready_timeout_s: float = Field(default=3600, gt=0)
    poll_interval_s: float = Field(default=0.25, gt=0, le=60)
    request_timeout_s: float = Field(default=5, gt=0, le=600)
    completion_timeout_s: float = Field(default=120, gt=0, le=3600)
    liveness_interval_s: float = Field(default=10, gt=0)
    liveness_failures: int = Field(default=3, ge=1, le=100)  # consecutive failed probes before "unhealthy"
    restart: Literal["none", "restart"] = "none"  # on a crash or an unhealthy server, within the same job
    max_restarts: int = Field(default=3, ge=0, le=100)
    restart_backoff_s: float = Field(default=10, ge=0, le=3600)  # doubles after each restart
    # before ready: no progress this long (no rank starting, the job's log not growing) is a hang, handled
    # like an unhealthy server (health.restart); 0: never judged hung (ready_timeout_s still applies)
    hang_after_s: float = Field(default=900, ge=0)
    prompt: Annotated[str, Field(min_length=1, max_length=2000)] = "The capital of France is"
    expect: Annotated[str, Field(max_length=200)] = "Paris"
    max_tokens: int = Field(default=50, ge=1, le=4096)


class Gateway(_Strict):
    """An API-key gateway in front of trtllm-serve, for sharing the endpoint on a shared cluster."""

    enabled: bool = False
    api_key: Secret | None = None  # where the key is read at run time (file preferred)
    host: Host = "0.0.0.0"  # noqa: S104 - the gateway is what may listen widely; the server stays on loopback

    @model_validator(mode="after")
    def _key(self) -> Gateway:
        if self.enabled and self.api_key is None:
            raise ValueError("gateway.enabled needs gateway.api_key (file: or env:)")
        return self


class Router(_Strict):
    """A stable endpoint: a small proxy in its own long-lived job that forwards to whichever serve
    job of the deployment is the newest healthy one, across handovers and redeploys."""

    enabled: bool = False
    host: Host = "127.0.0.1"  # loopback by default; wider exposes the server's routes (control routes are always refused)
    port: int = Field(default=8100, ge=1, le=65535)
    partition: Name | None = None  # default: the prep-model stage's (CPU) partition
    time: SlurmTime = "7-00:00:00"
    cpus: int = Field(default=1, ge=1, le=64)
    mem: Mem = "1G"
    drain_s: float = Field(default=10, ge=0, le=3600)  # an old server keeps answering this long after traffic moved
    # python: the aiohttp router carries every request; nginx: nginx on the router's node carries them (about 7x the
    # requests per second, docs/performance.md), the Python router decides where they go and holds what no replica takes
    engine: Literal["python", "nginx"] = "python"
    nginx: LocalPath = "nginx"  # the nginx binary on the router's node (engine nginx)


class Handover(_Strict):
    """Serving through the serve job's time limit. overlap: each serve job queues its successor to
    begin lead_s before its own limit; the successor takes the traffic once healthy and the old job
    ends. requeue: where overlapping jobs are not allowed, Slurm requeues the job lead_s before its
    limit (the server is down while it restarts)."""

    mode: Literal["none", "overlap", "requeue"] = "none"
    lead_s: float = Field(default=1800, ge=10, le=86400)  # must cover queueing, load and warmup


class Ssh(_Strict):
    """A login node to reach over SSH; without it, glm5_hpc runs where the Slurm commands are."""

    host: Host
    user: Name | None = None
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: LocalPath | None = None
    known_hosts: LocalPath = "~/.ssh/known_hosts"
    strict_host_keys: bool = True  # unknown or changed host keys are errors unless this is false
    jump_host: Annotated[str, _matching(_JUMP, "[user@]host[:port]")] | None = None
    connect_timeout_s: float = Field(default=15, gt=0, le=300)
    remote_venv: LocalPath = ".local/share/glm5_hpc/venv"  # on the login node, relative to the home directory
    python: LocalPath = "python3"  # interpreter on the login node that creates the remote venv


class Bench(_Strict):
    """`glm5_hpc bench`: NVIDIA's AIPerf drives the load (pip install aiperf), from where the command
    runs or, for an endpoint only its node reaches, in a step of the serve job on that node."""

    aiperf: LocalPath = "aiperf"  # the aiperf command, on shared storage when it must run on a serve node


class Profile(_Strict):
    """One cluster's settings. `source` is the file it was read from (for error messages)."""

    name: Name
    source: str = ""
    gpu_preflight: bool = True  # check nvidia-smi on the build and serve nodes before starting
    run_access: Literal["private", "group"] = "private"  # run dirs, logs, pickles: 0700/0600, or group-readable
    slurm: Slurm = Slurm()
    ssh: Ssh | None = None  # set: every command runs on this login node (see glm5_hpc remote setup)
    work_dir: ClusterPath
    model: Model
    recipe: Recipe = Recipe()
    container: Container = Field(default_factory=lambda: Container.model_validate({}))
    stages: Stages
    serve: Serve = Serve()
    gateway: Gateway = Gateway()
    health: Health = Health()
    router: Router = Router()
    handover: Handover = Handover()
    bench: Bench = Bench()

    @property
    def run_umask(self) -> int:
        """The umask of everything a run creates: its directories, scripts, logs, pickles, health files."""
        return 0o077 if self.run_access == "private" else 0o027

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data: Any) -> Any:
        """The stock variant follows NVIDIA's GLM-5 guide: its serve defaults, expert parallelism over
        the tensor-parallel GPUs, and the checkpoint served as shipped (no edits unless asked for)."""
        if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict) or data["recipe"].get("variant") != "stock":
            return data
        given = data.get("serve")
        if given is not None and not isinstance(given, dict):
            return data  # the schema reports it
        serve: dict[str, Any] = given or {}
        merged = {**STOCK_SERVE, "ep_size": serve.get("tp_size", 8), **serve}
        for key in ("kv_cache", "cuda_graph"):
            if isinstance(serve.get(key), dict):
                merged[key] = {**STOCK_SERVE[key], **serve[key]}
        model = data.get("model")
        if isinstance(model, dict) and "edits" not in model:
            model = {**model, "edits": dict.fromkeys(ModelEdits.model_fields, False)}
        return {**data, "serve": merged, "model": model}

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.recipe.variant == "source-build" and self.stages.build_wheel is None:
            raise ValueError("recipe.variant is source-build, so stages.build-wheel is required")
        if self.gateway.enabled and self.container.network != "host":
            raise ValueError("gateway.enabled needs container.network host (the server binds the node's loopback)")
        if self.gateway.enabled and self.serve.host not in (None, "127.0.0.1", "localhost"):
            raise ValueError("with gateway.enabled, serve.host must stay on loopback; the gateway listens on gateway.host")
        if self.serve.host is None:
            default = "0.0.0.0" if self.container.network == "bridge" else "127.0.0.1"  # noqa: S104 - node-local in a bridge
            object.__setattr__(self, "serve", self.serve.model_copy(update={"host": default}))
        if self.router.enabled and (unreachable := self.node_local_endpoint()):
            raise ValueError(
                f"router.enabled: the router job runs on another node than the serve job and could not reach its "
                f"endpoint ({unreachable}); set serve.host: 0.0.0.0 with container.network host, or container.publish: "
                "true with the bridge network, or gateway.enabled (its gateway.host is what the router reaches)"
            )
        if self.serve.replicas > 1 and not self.router.enabled:
            raise ValueError(
                f"serve.replicas {self.serve.replicas} needs router.enabled: the router is the one endpoint that spreads "
                "requests over the replicas"
            )
        if self.handover.mode == "overlap" and not self.router.enabled:
            raise ValueError("handover.mode overlap needs router.enabled (clients follow the handover through the router)")
        serve_s = self.stages.serve.time_minutes * 60
        if self.handover.mode != "none" and self.handover.lead_s >= serve_s / 2:
            raise ValueError(
                f"handover.lead_s {self.handover.lead_s:g} must be under half of stages.serve.time ({serve_s} s), "
                "or each serve job would hand over almost as soon as it starts"
            )
        if self.serve.mtp_layers and self.model.precision == "nvfp4":
            raise ValueError("serve.mtp_layers: NVIDIA's GLM-5 guide does not support MTP with the NVFP4 checkpoint")
        self._check_serve_nodes()
        return self

    def _check_serve_nodes(self) -> None:
        """One server over stages.serve.nodes nodes: tp_size MPI ranks, the same number on each node."""
        res, tp = self.stages.serve, self.serve.tp_size
        for stage, other in (("prep-model", self.stages.prep_model), ("build-wheel", self.stages.build_wheel)):
            if other is not None and other.nodes != 1:
                raise ValueError(f"stages.{stage}.nodes {other.nodes}: only the serve stage runs across nodes; remove the key")
        if res.nodes == 1:
            if tp > res.gpus:
                raise ValueError(f"serve.tp_size {tp} needs at least that many GPUs, but stages.serve.gpus is {res.gpus}")
            return
        if tp % res.nodes:
            raise ValueError(
                f"serve.tp_size {tp} over stages.serve.nodes {res.nodes}: every node runs the same number of ranks; "
                f"set tp_size to a multiple of {res.nodes}"
            )
        if tp // res.nodes > res.gpus:
            raise ValueError(
                f"serve.tp_size {tp} over {res.nodes} nodes puts {tp // res.nodes} ranks on each node, but stages.serve.gpus "
                f"(per node) is {res.gpus}"
            )
        if self.container.runtime == "docker" and self.container.network != "host":
            raise ValueError(
                f"stages.serve.nodes {res.nodes}: the ranks of one server reach each other over the nodes' network; "
                "set container.network: host"
            )

    @property
    def ranks_per_node(self) -> int:
        """MPI ranks of the serve job on each of its nodes (1 on a single node: trtllm-serve spawns its workers)."""
        return self.serve.tp_size // self.stages.serve.nodes if self.stages.serve.nodes > 1 else 1

    def node_local_endpoint(self) -> str:
        """What makes the serve endpoint reachable from its own node only ("" when other nodes reach it)."""
        if self.gateway.enabled:
            return "" if self.gateway.host not in LOOPBACK else f"gateway.host {self.gateway.host} is the node's loopback"
        if self.container.network == "bridge":
            return "" if self.container.publish else "a container bridge IP, with container.publish false"
        return "" if self.serve.host not in LOOPBACK else f"serve.host {self.serve.host} is the node's loopback"

    @property
    def model_path(self) -> PurePosixPath:
        return PurePosixPath(self.model.path)


def _valid_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at `loc` (the parent of an unknown key), for the error message."""
    current: Any = model
    for part in loc:
        field = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        ann = field.annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = args[0] if args else ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items() if n != "source")
    return []


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        valid = _valid_keys(Profile, loc[:-1])
        return f"unknown key {key}; valid keys here: {', '.join(valid)}"
    if error["type"] == "missing":
        return f"missing required key {key}"
    msg = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {msg}" if loc else msg


def parse_profile(text: str, source: str, default_name: str) -> Profile:
    """Parse and validate a profile's YAML text. Raises ProfileError naming the file and key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {source}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {source}: expected a mapping of keys at the top level")
    data.setdefault("name", default_name)
    data["source"] = source
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise ProfileError(f"profile {source}: {_describe(first)}{more}") from None
