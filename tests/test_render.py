"""Rendering: golden files show any change to a generated script as a diff.
Regenerate after an intended change with GLM5_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
import yaml

from glm5_hpc.adapters.resources import load_profile, templates
from glm5_hpc.domain.plan import PREP, RunPaths, plan_chain
from glm5_hpc.domain.profile import parse_profile
from glm5_hpc.domain.render import RenderContext, render_run
from tests.conftest import REPO

GOLDEN = Path(__file__).resolve().parent / "golden"
CTX = RenderContext(
    deployment="glm5",
    paths=RunPaths(PurePosixPath("/shared/glm5/work"), "glm5", "20260101-000000-abcd"),
    python="/shared/glm5/venv/bin/python",
    tool_packages={
        "glm5_hpc": "/shared/glm5/venv/lib/python3.11/site-packages/glm5_hpc",
        "jobs": "/shared/glm5/venv/lib/python3.11/site-packages/jobs",
    },
    commit="0123456789abcdef0123456789abcdef01234567",
    wheel_key="k" * 20,
)


def example() -> dict[str, str]:
    return render_run(load_profile(str(REPO / "cluster_profiles" / "example-b200.yaml")), CTX, templates())


def test_example_profile_matches_golden_files() -> None:
    rendered = example()
    folder = GOLDEN / "example-b200"
    if os.environ.get("GLM5_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (folder / name).write_text(text)
    assert sorted(rendered) == sorted(p.name for p in folder.iterdir())
    for name, text in rendered.items():
        assert text == (folder / name).read_text(), f"{name} differs from tests/golden/example-b200/{name}"


def test_serve_config_is_the_recipes_yaml() -> None:
    assert yaml.safe_load(example()["serve-config.yaml"]) == {
        "sparse_attention_config": {"algorithm": "dsa", "index_n_heads": 32, "index_head_dim": 128, "index_topk": 2048},
        "kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.90},
        "enable_chunked_prefill": True,
    }


def test_recipe_commands_present() -> None:
    r = example()
    assert (
        "trtllm-serve serve /workspace/scratch/GLM-5-nvfp4-v1 --host 0.0.0.0 --port 8000 --tp_size 8 "
        "--max_batch_size 64 --max_num_tokens 8192 --trust_remote_code --extra_llm_api_options"
    ) in r["serve-container.sh"]
    assert "python3 scripts/build_wheel.py --fast_build --cuda_architectures 100 --no-venv --job_count 32" in r["build-wheel.sh"]
    assert "pip install --no-deps --force-reinstall" in r["serve-container.sh"]
    assert "docker run --rm --init --name" in r["serve.sh"]
    assert "--gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864" in r["serve.sh"]
    assert "-v /shared/models:/workspace/scratch" in r["serve.sh"]
    assert "git lfs install --skip-repo" in r["build-wheel.sh"]


def test_stock_variant_has_no_build_and_installs_nothing() -> None:
    doc = yaml.safe_load((REPO / "cluster_profiles" / "example-b200.yaml").read_text())
    doc["recipe"]["variant"] = "stock"
    profile = parse_profile(yaml.safe_dump(doc), "stock.yaml", "stock")
    rendered = render_run(profile, CTX, templates())
    assert "build-wheel.sh" not in rendered
    assert "pip install" not in rendered["serve-container.sh"]
    assert [s.stage for s in plan_chain(profile, wheel_cached=False)] == ["prep-model", "serve"]
    assert plan_chain(profile, wheel_cached=False)[1].after == PREP


def test_cached_wheel_skips_build() -> None:
    profile = load_profile(str(REPO / "cluster_profiles" / "example-b200.yaml"))
    assert [s.stage for s in plan_chain(profile, wheel_cached=True)] == ["prep-model", "serve"]
    assert [(s.stage, s.after) for s in plan_chain(profile, wheel_cached=False)] == [
        ("prep-model", None),
        ("build-wheel", "prep-model"),
        ("serve", "build-wheel"),
    ]


def test_skipped_edits_become_prep_flags() -> None:
    doc = yaml.safe_load((REPO / "cluster_profiles" / "example-b200.yaml").read_text())
    doc["model"]["edits"] = {"tokenizer_class": False, "special_tokens_key": False}
    profile = parse_profile(yaml.safe_dump(doc), "p.yaml", "p")
    assert "--skip tokenizer-class --skip special-tokens-key" in render_run(profile, CTX, templates())["prep-model.sh"]


@pytest.mark.parametrize("script", ["prep-model.sh", "build-wheel.sh", "serve.sh", "serve-container.sh"])
def test_rendered_scripts_are_valid_bash(script: str, tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / script
    path.write_text(example()[script])
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
