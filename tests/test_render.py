"""Rendering: golden files show any change to a generated script as a diff.
Regenerate after an intended change with GLM5_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from glm5_hpc.adapters.resources import templates
from glm5_hpc.domain.plan import RunPaths, plan_chain
from glm5_hpc.domain.profile import Profile, parse_profile
from glm5_hpc.domain.render import RenderContext, pyxis_image, render_run
from glm5_hpc.errors import ProfileError
from tests.conftest import REPO

GOLDEN = Path(__file__).resolve().parent / "golden"
CTX = RenderContext(
    deployment="glm5",
    paths=RunPaths(PurePosixPath("/shared/glm5/workdir"), "glm5", "20260101-000000-abcd"),
    python="/shared/glm5/venv/bin/python",
    tool_packages={
        "glm5_hpc": "/shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc",
        "jobs": "/shared/glm5/venv/lib/python3.11/site-packages/jobs",
    },
    commit="0123456789abcdef0123456789abcdef01234567",
    wheel_key="k" * 20,
)


def example_profile(**changes: object) -> Profile:
    doc = yaml.safe_load((REPO / "cluster_profiles" / "example-b200.yaml").read_text())
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return parse_profile(yaml.safe_dump(doc), "example-b200.yaml", "example-b200")


def example(**changes: object) -> dict[str, str]:
    return render_run(example_profile(**changes), CTX, templates())


VARIANTS: dict[str, dict[str, object]] = {
    "docker": {},
    "docker-stock": {"recipe__variant": "stock"},
    "pyxis": {"container": {"runtime": "pyxis"}},
    "apptainer": {"container": {"runtime": "apptainer", "image": "/shared/images/tensorrt-llm-1.3.0rc3.sif"}},
    "bare": {"container": {"runtime": "bare"}},
    # one server over two nodes, 8 ranks on each (NVIDIA's multi-node trtllm-serve)
    "pyxis-2-nodes": {"container": {"runtime": "pyxis"}, "stages__serve__nodes": 2, "serve__tp_size": 16},
    "docker-2-nodes": {"container__network": "host", "stages__serve__nodes": 2, "serve__tp_size": 16},
}


SHIPPED = ("example-b200-official", "example-h200-fp8")  # example-b200 itself is the "docker" variant


def shipped_profile(name: str) -> Profile:
    path = REPO / "cluster_profiles" / f"{name}.yaml"
    return parse_profile(path.read_text(), path.name, name)


@pytest.mark.parametrize("variant", [*sorted(VARIANTS), *(f"shipped-{n}" for n in SHIPPED)])
def test_rendered_files_match_golden(variant: str) -> None:
    """Every runtime and stage, and every shipped example profile: what each stage will run, byte
    for byte (the recipe's flags and YAML for source-build, NVIDIA's GLM-5 guide for stock)."""
    name = variant.removeprefix("shipped-")
    profile = shipped_profile(name) if name in SHIPPED else example_profile(**VARIANTS[variant])
    rendered = render_run(profile, CTX, templates())
    folder = GOLDEN / variant
    if os.environ.get("GLM5_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in rendered.items():
            (folder / name).write_text(text)
    assert sorted(rendered) == sorted(p.name for p in folder.iterdir())
    for name, text in rendered.items():
        assert text == (folder / name).read_text(), f"{name} differs from tests/golden/{variant}/{name}"


def test_serve_config_is_the_recipes_yaml() -> None:
    assert yaml.safe_load(example()["serve-config.yaml"]) == {
        "sparse_attention_config": {"algorithm": "dsa", "index_n_heads": 32, "index_head_dim": 128, "index_topk": 2048},
        "kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.90},
        "enable_chunked_prefill": True,
    }


def test_metrics_and_extra_keys_reach_the_serve_yaml() -> None:
    doc = yaml.safe_load(REPO.joinpath("cluster_profiles", "example-b200.yaml").read_text())
    doc["serve"] = {"prometheus_metrics": True, "extra_config": {"print_iter_log": True, "max_seq_len": 32768}}
    profile = parse_profile(yaml.safe_dump(doc), "x.yaml", "x")
    config = yaml.safe_load(render_run(profile, CTX, templates())["serve-config.yaml"])
    assert config["return_perf_metrics"] is True  # trtllm-serve mounts /prometheus/metrics
    assert config["print_iter_log"] is True and config["max_seq_len"] == 32768
    assert config["kv_cache_config"] == {"dtype": "fp8", "free_gpu_memory_fraction": 0.90}


def test_recipe_commands_present() -> None:
    r = example()
    assert (
        'trtllm-serve serve /workspace/scratch/GLM-5-nvfp4-v1 --host 0.0.0.0 --port "$GLM5_SERVE_PORT" --tp_size 8 '
        "--max_batch_size 64 --max_num_tokens 8192 --trust_remote_code --extra_llm_api_options"
    ) in r["serve-container.sh"]
    assert "python3 scripts/build_wheel.py --fast_build --cuda_architectures 100 --no-venv --job_count 32" in r["build-wheel.sh"]
    assert "pip install --no-deps --force-reinstall" in r["serve-container.sh"]
    assert "docker run --rm --init --name" in r["serve.sh"]
    assert "--gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864" in r["serve.sh"]
    assert "-v /shared/models:/workspace/scratch" in r["serve.sh"]
    assert "git lfs install --skip-repo" in r["build-wheel.sh"]


def submitted(plan: list) -> list[tuple[str, str | None]]:
    return [(s.stage, s.after) for s in plan if not s.skipped]


def test_stock_variant_has_no_build_and_installs_nothing() -> None:
    profile = example_profile(recipe__variant="stock")
    rendered = render_run(profile, CTX, templates())
    assert "build-wheel.sh" not in rendered
    assert "pip install" not in rendered["serve-container.sh"]
    plan = plan_chain(profile, wheel_cached=False)
    assert submitted(plan) == [("prep-model", None), ("serve", "prep-model")]
    assert plan[1].skipped == "stock variant: no build"


def test_plans_skip_what_is_done_and_from_forces() -> None:
    profile = example_profile()
    assert submitted(plan_chain(profile, wheel_cached=False)) == [
        ("prep-model", None),
        ("build-wheel", "prep-model"),
        ("serve", "build-wheel"),
    ]
    assert submitted(plan_chain(profile, wheel_cached=True)) == [("prep-model", None), ("serve", "prep-model")]
    # redeploy with unchanged inputs: serve alone, depending on nothing old
    assert submitted(plan_chain(profile, wheel_cached=True, prep_done=True)) == [("serve", None)]
    assert submitted(plan_chain(profile, wheel_cached=True, prep_done=True, from_stage="build-wheel")) == [
        ("build-wheel", None),
        ("serve", "build-wheel"),
    ]
    assert len(submitted(plan_chain(profile, wheel_cached=True, prep_done=True, from_stage="prep-model"))) == 3


def test_skipped_edits_become_prep_flags() -> None:
    profile = example_profile(model__edits={"tokenizer_class": False, "special_tokens_key": False})
    assert "--skip tokenizer-class --skip special-tokens-key" in render_run(profile, CTX, templates())["prep-model.sh"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_scripts_are_valid_bash(variant: str, tmp_path: Path) -> None:
    for script in (GOLDEN / variant).glob("*.sh"):
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{variant}/{script.name}: {proc.stderr}"


def test_runtime_specifics() -> None:
    pyxis = (GOLDEN / "pyxis" / "serve.sh").read_text()
    assert "--container-image='nvcr.io#nvidia/tensorrt-llm/release:1.3.0rc3'" in pyxis
    assert 'srun --ntasks=1 "${pyxis[@]}"' in pyxis
    assert "--container-mounts=/shared/models:/workspace/scratch,/shared/glm5/workdir/deployments/" in pyxis
    apptainer = (GOLDEN / "apptainer" / "serve.sh").read_text()
    assert "apptainer exec --nv --writable-tmpfs --bind /shared/models:/workspace/scratch," in apptainer
    assert apptainer.rstrip().endswith("serve-container.sh")
    bare = (GOLDEN / "bare" / "serve-container.sh").read_text()
    assert "trtllm-serve serve /shared/models/GLM-5-nvfp4-v1 " in bare  # no container: the real path
    assert "PYTHONPATH=/shared/glm5/workdir/deployments/glm5/runs/20260101-000000-abcd/scripts/tool " in bare
    for runtime in ("docker", "pyxis", "apptainer", "bare"):
        serve = (GOLDEN / runtime / "serve.sh").read_text()
        assert "glm5_hpc preflight --min-gpus 8 --model /shared/models/GLM-5-nvfp4-v1 --cuda-arch 100" in serve
    assert "preflight --cuda-arch 100" in (GOLDEN / "docker" / "build-wheel.sh").read_text()


def test_pyxis_image_names() -> None:
    assert pyxis_image("nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3") == "nvcr.io#nvidia/tensorrt-llm/release:1.3.0rc3"
    assert pyxis_image("ubuntu:22.04") == "ubuntu:22.04"
    assert pyxis_image("/shared/images/trtllm.sqsh") == "/shared/images/trtllm.sqsh"
    assert pyxis_image("nvcr.io#nvidia/x:1") == "nvcr.io#nvidia/x:1"


def test_env_files_never_expand_values() -> None:
    profile = example_profile(container__env={"A": "$(id) `x` 'q'"})
    rendered = render_run(profile, CTX, templates())
    assert rendered["container.env"] == "A=$(id) `x` 'q'\n"
    out = subprocess.run(
        ["bash", "-c", 'set -a; . /dev/stdin; printf %s "$A"'],
        input=rendered["env.sh"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "$(id) `x` 'q'"


def test_publish_only_on_serve() -> None:
    r = example(container={"publish": True})
    assert '-e GLM5_SERVE_PORT -p "$GLM5_SERVE_PORT:$GLM5_SERVE_PORT"' in r["serve.sh"]
    assert "GLM5_SERVE_PORT" not in r["build-wheel.sh"]


def test_shipped_examples_follow_their_source() -> None:
    """example-b200: the recipe (seed). The official ones: NVIDIA's GLM-5 deployment guide."""
    recipe = yaml.safe_load(render_run(shipped_profile("example-b200"), CTX, templates())["serve-config.yaml"])
    assert recipe["sparse_attention_config"]["algorithm"] == "dsa" and "moe_config" not in recipe
    for name, backend in (("example-b200-official", "TRTLLM"), ("example-h200-fp8", "DEEPGEMM")):
        profile = shipped_profile(name)
        files = render_run(profile, CTX, templates())
        guide = yaml.safe_load(files["serve-config.yaml"])
        assert guide["moe_config"] == {"backend": backend} and "sparse_attention_config" not in guide
        assert guide["kv_cache_config"] == {"dtype": "fp8", "free_gpu_memory_fraction": 0.75, "enable_block_reuse": False}
        assert guide["cuda_graph_config"] == {"enable_padding": True, "max_batch_size": 128}
        assert (guide["enable_attention_dp"], guide["stream_interval"], guide["enable_chunked_prefill"]) == (False, 10, True)
        assert "--tp_size 8 --ep_size 8 --max_batch_size 128 --max_num_tokens 8192" in files["serve-container.sh"]
        assert "prep-model.sh" in files and not any(profile.model.edits.model_dump().values())  # served as shipped
        assert [s.stage for s in plan_chain(profile, False) if not s.skipped] == ["serve"]
    fp8 = yaml.safe_load(render_run(shipped_profile("example-h200-fp8"), CTX, templates())["serve-config.yaml"])
    assert fp8["speculative_config"] == {"decoding_type": "MTP", "num_nextn_predict_layers": 1}
    with pytest.raises(ProfileError, match="does not support MTP with the NVFP4 checkpoint"):
        doc = yaml.safe_load((REPO / "cluster_profiles" / "example-b200-official.yaml").read_text())
        doc["serve"]["mtp_layers"] = 1
        parse_profile(yaml.safe_dump(doc), "x.yaml", "x")
