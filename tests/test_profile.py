"""Profile loading and validation: every bad value gives one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.domain.profile import parse_profile
from glm5_hpc.errors import ProfileError
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())


def parse(doc: dict) -> object:
    return parse_profile(yaml.safe_dump(doc), "p.yaml", "p")


def with_value(path: str, value: object) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node = doc
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def test_bundled_profiles_load() -> None:
    local = load_profile(str(REPO / "cluster_profiles" / "local.yaml"))
    assert local.name == "local"
    assert local.stages.serve.gres == "gpu:b200:8"
    assert local.container.binary == "podman"
    example = load_profile(str(REPO / "cluster_profiles" / "example-b200.yaml"))
    assert example.container.image == "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3"
    assert example.serve.tp_size == 8
    assert example.container.run_flags == ("--gpus", "all", "--ipc=host", "--ulimit", "memlock=-1", "--ulimit", "stack=67108864")
    assert example.stages.serve.time_minutes == 240


def test_profile_found_by_name_in_bundled_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_profile("local").source.endswith("local.yaml")


def test_missing_profile_names_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError, match=r"profile 'nosuch' not found; looked for nosuch.yaml in: .*cluster_profiles"):
        load_profile("nosuch")


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ProfileError) as err:
        parse(with_value("serve.tp_sise", 8))
    assert str(err.value) == (
        "profile p.yaml: unknown key serve.tp_sise; valid keys here: cuda_graph, enable_attention_dp, enable_chunked_prefill, "
        "ep_size, extra_config, host, kv_cache, max_batch_size, max_num_tokens, moe_backend, mtp_layers, port, "
        "prometheus_metrics, replicas, sparse_attention, stream_interval, tp_size, trust_remote_code"
    )


def test_missing_required_key() -> None:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    del doc["work_dir"]
    with pytest.raises(ProfileError, match=r"^profile p.yaml: missing required key work_dir$"):
        parse(doc)


HOSTILE = ["gpu; rm -rf /", "gpu\n#SBATCH --uid=0", "$(id)", "gpu x", "`id`", "a'b", 'a"b', "#gpu"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "key",
    ["stages.serve.partition", "slurm.account", "work_dir", "model.path", "container.image", "recipe.source.branch"],
)
def test_hostile_values_rejected_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse(with_value(key, value if not key.endswith(("path", "work_dir")) else "/x/" + value))
    assert str(err.value).startswith(f"profile p.yaml: {key}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["--privileged; id", "$(id)", "a b", "x\n--y"])
def test_hostile_run_flags_rejected(value: str) -> None:
    with pytest.raises(ProfileError, match=r"container.run_flags.0: "):
        parse(with_value("container.run_flags", [value]))


def test_env_names_and_values_checked() -> None:
    with pytest.raises(ProfileError, match="not a valid environment variable name"):
        parse(with_value("container.env", {"BAD-NAME": "1"}))
    with pytest.raises(ProfileError, match=r"container.env.X: "):
        parse(with_value("container.env", {"X": "a\nb"}))


def test_tp_size_needs_enough_gpus() -> None:
    with pytest.raises(ProfileError, match=r"serve.tp_size 8 needs at least that many GPUs, but stages.serve.gpus is 4"):
        parse(with_value("stages.serve.gpus", 4))


def two_nodes(tp_size: int, gpus: int = 8, **container: object) -> dict:
    doc = with_value("stages.serve.nodes", 2)
    doc["stages"]["serve"]["gpus"] = gpus
    doc["serve"]["tp_size"] = tp_size
    doc["container"].update(container)
    return doc


def test_a_server_across_nodes_is_checked_against_its_nodes() -> None:
    profile = parse(two_nodes(16))
    assert profile.ranks_per_node == 8 and profile.stages.serve.nodes == 2  # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match=r"serve.tp_size 15 over stages.serve.nodes 2: .* set tp_size to a multiple of 2"):
        parse(two_nodes(15))
    with pytest.raises(ProfileError, match=r"puts 8 ranks on each node, but stages.serve.gpus \(per node\) is 4"):
        parse(two_nodes(16, gpus=4))
    with pytest.raises(ProfileError, match=r"stages.serve.nodes 2: .*set container.network: host"):
        parse(two_nodes(16, network="bridge"))
    with pytest.raises(ProfileError, match=r"stages.build-wheel.nodes 2: only the serve stage runs across nodes"):
        parse(with_value("stages.build-wheel.nodes", 2))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("serve.max_batch_size", 0),
        ("serve.port", 70000),
        ("stages.serve.time", "4h"),
        ("stages.serve.mem", "lots"),
        ("serve.sparse_attention.algorithm", "nsa"),
        ("serve.kv_cache.dtype", "bf16"),  # TensorRT-LLM would refuse it only at model load
        ("serve.extra_config", {"kv_cache_config": {"dtype": "fp8"}}),  # modeled: set it at serve.kv_cache
    ],
)
def test_bad_sizes_and_choices(key: str, value: object) -> None:
    with pytest.raises(ProfileError, match=f"profile p.yaml: {key}"):
        parse(with_value(key, value))


def test_source_build_needs_a_build_stage_but_stock_does_not() -> None:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    del doc["stages"]["build-wheel"]
    with pytest.raises(ProfileError, match=r"stages.build-wheel is required"):
        parse(doc)
    doc["recipe"]["variant"] = "stock"
    assert parse(doc).recipe.variant == "stock"  # type: ignore[attr-defined]


def test_invalid_yaml_is_one_line() -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile("a: [1,\n", "p.yaml", "p")
    assert str(err.value).startswith("profile p.yaml: not valid YAML")
    assert "\n" not in str(err.value)


def test_time_limits_in_minutes() -> None:
    assert parse(with_value("stages.serve.time", "1-02:03:04")).stages.serve.time_minutes == 1440 + 123 + 1  # type: ignore[attr-defined]


def test_handover_needs_the_router_and_room_before_the_limit() -> None:
    with pytest.raises(ProfileError, match=r"handover.mode overlap needs router.enabled"):
        parse(with_value("handover", {"mode": "overlap", "lead_s": 600}))
    doc = with_value("handover", {"mode": "overlap", "lead_s": 7200})  # serve time is 4 h: 14400 s
    doc["router"] = {"enabled": True}
    doc["serve"]["host"] = "0.0.0.0"
    with pytest.raises(ProfileError, match=r"handover.lead_s 7200 must be under half of stages.serve.time \(14400 s\)"):
        parse(doc)
    doc["handover"]["lead_s"] = 1800
    assert parse(doc).handover.lead_s == 1800  # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match=r"router.port"):
        parse(with_value("router", {"enabled": True, "port": 0}))
    with pytest.raises(ProfileError, match=r"router.host"):
        parse(with_value("router", {"enabled": True, "host": "$(reboot)"}))


def test_router_needs_an_endpoint_other_nodes_reach() -> None:
    """The router job runs on a CPU node: a serve endpoint on the GPU node's loopback or a container
    bridge IP is refused, naming the keys and the fix; the node's address, a published port or a
    gateway listening on the node's address are accepted."""
    with pytest.raises(
        ProfileError,
        match=r"router.enabled: .* could not reach its endpoint \(serve.host 127.0.0.1 is the node's"
        r" loopback\); set serve.host: 0.0.0.0 with container.network host, or container.publish: true",
    ):
        parse(with_value("router", {"enabled": True}))
    bridge = with_value("router", {"enabled": True})
    bridge["container"]["network"] = "bridge"
    del bridge["serve"]["host"]
    with pytest.raises(ProfileError, match=r"\(a container bridge IP, with container.publish false\)"):
        parse(bridge)
    bridge["container"]["publish"] = True
    assert parse(bridge).router.enabled  # type: ignore[attr-defined]
    wide = with_value("router", {"enabled": True})
    wide["serve"]["host"] = "0.0.0.0"
    assert parse(wide).router.enabled  # type: ignore[attr-defined]
    gated = with_value("router", {"enabled": True})
    gated["gateway"] = {"enabled": True, "api_key": {"file": "/x/key"}}
    assert parse(gated).router.enabled  # type: ignore[attr-defined]
    gated["gateway"]["host"] = "127.0.0.1"
    with pytest.raises(ProfileError, match=r"gateway.host 127.0.0.1 is the node's loopback"):
        parse(gated)


def test_kv_cache_dtype_allows_what_tensorrt_llm_accepts() -> None:
    for dtype in ("auto", "fp8", "nvfp4"):
        assert parse(with_value("serve.kv_cache.dtype", dtype)).serve.kv_cache.dtype == dtype  # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match=r"serve.kv_cache.dtype: Input should be 'auto', 'fp8' or 'nvfp4'"):
        parse(with_value("serve.kv_cache.dtype", "fp16"))
    with pytest.raises(
        ProfileError,
        match=r"serve.extra_config: return_perf_metrics is set through the profile "
        r"\(serve.prometheus_metrics\); set it there",
    ):
        parse(with_value("serve.extra_config", {"return_perf_metrics": True}))


def test_replicas_need_the_router_and_stay_in_bounds() -> None:
    with pytest.raises(ProfileError, match=r"serve.replicas 2 needs router.enabled"):
        parse(with_value("serve.replicas", 2))
    with pytest.raises(ProfileError, match=r"serve.replicas"):
        parse(with_value("serve.replicas", 0))
    doc = with_value("serve.replicas", 2)
    doc["router"] = {"enabled": True, "engine": "nginx"}
    doc["serve"]["host"] = "0.0.0.0"
    profile = parse(doc)
    assert profile.serve.replicas == 2 and profile.router.engine == "nginx"  # type: ignore[attr-defined]
    with pytest.raises(ProfileError, match=r"router.engine"):
        parse({**doc, "router": {"enabled": True, "engine": "haproxy"}})
