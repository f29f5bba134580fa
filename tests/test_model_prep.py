"""Checkpoint edits: atomic, backed up once, idempotent to the byte and the mtime, reversible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from glm5_hpc.app.prep import prep_model
from glm5_hpc.domain.model_prep import Edits, prepare_config, prepare_tokenizer
from glm5_hpc.errors import PrepError
from tests.conftest import copy_checkpoint, glm5


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return copy_checkpoint(tmp_path)


def test_prep_makes_the_recipe_edits(model: Path) -> None:
    result = prep_model(model, Edits())
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["architectures"] == ["DeepseekV32ForCausalLM"]
    assert cfg["model_type"] == "deepseek_v32"
    assert cfg["rope_theta"] == 1000000
    assert cfg["rope_scaling"] == {"type": "none", "factor": 1.0}
    assert cfg["qk_nope_head_dim"] == 192 and cfg["v_head_dim"] == 256  # everything else unchanged
    tok = json.loads((model / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "extra_special_tokens" not in tok and tok["additional_special_tokens"][0] == "<|endoftext|>"
    assert list(tok).index("additional_special_tokens") == 4  # renamed in place
    for f in result.files:
        assert f.written and f.sha256_before != f.sha256_after
    assert (model / "config.json.orig").exists() and (model / "tokenizer_config.json.orig").exists()


def test_rerun_changes_nothing_and_keeps_backup(model: Path) -> None:
    original = (model / "config.json").read_bytes()
    prep_model(model, Edits())
    stats = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in model.iterdir()}
    again = prep_model(model, Edits())
    assert not again.changes_needed
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in model.iterdir()} == stats
    assert (model / "config.json.orig").read_bytes() == original


def test_check_reports_and_revert_restores(model: Path) -> None:
    original = {n: (model / n).read_bytes() for n in ("config.json", "tokenizer_config.json")}
    assert prep_model(model, Edits(), "check").changes_needed
    assert {n: (model / n).read_bytes() for n in original} == original  # check wrote nothing
    prep_model(model, Edits())
    assert not prep_model(model, Edits(), "check").changes_needed
    prep_model(model, Edits(), "revert")
    assert {n: (model / n).read_bytes() for n in original} == original


def test_cli_check_exit_codes(model: Path) -> None:
    assert glm5("prep", str(model), "--check").returncode == 1
    assert glm5("prep", str(model)).returncode == 0
    out = glm5("prep", str(model), "--check")
    assert out.returncode == 0 and "config.json: unchanged" in out.stdout


def test_refuses_other_models_naming_what_it_found(model: Path) -> None:
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        PrepError, match=r"not a GLM-5 checkpoint config: architectures=\['LlamaForCausalLM'\], model_type='llama'"
    ):
        prep_model(model, Edits())
    assert not (model / "tokenizer_config.json.orig").exists()  # nothing written


def test_invalid_json_named(model: Path) -> None:
    (model / "tokenizer_config.json").write_text('{"tokenizer_class": ')
    with pytest.raises(PrepError, match=r"tokenizer_config.json: not valid JSON"):
        prep_model(model, Edits())
    assert json.loads((model / "config.json").read_text())["model_type"] == "glm_moe_dsa"  # config untouched


def test_symlink_outside_refused(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((model / "config.json").read_bytes())
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(outside)
    with pytest.raises(PrepError, match=r"symlink to .* outside"):
        prep_model(model, Edits())


def test_never_opens_weights(model: Path) -> None:
    # A weight shard that is a FIFO: opening it for reading blocks until a writer comes, so a prep
    # that read weights (to hash them, say) would hang here and hit the timeout.
    os.mkfifo(model / "model-00001-of-00080.safetensors")
    glm5("prep", str(model), check=True, timeout=30)


def test_edits_can_be_turned_off() -> None:
    cfg = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa", "rope_parameters": {"rope_theta": 1000000}}
    out, _ = prepare_config(cfg, Edits(architecture=False))
    assert out["architectures"] == ["GlmMoeDsaForCausalLM"] and out["rope_theta"] == 1000000
    tok = {"tokenizer_class": "TokenizersBackend", "extra_special_tokens": ["a"]}
    out, _ = prepare_tokenizer(tok, Edits(tokenizer_class=False))
    assert out == {"tokenizer_class": "TokenizersBackend", "additional_special_tokens": ["a"]}


def test_rope_theta_mismatch_refused() -> None:
    cfg = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa", "rope_parameters": {"rope_theta": 10000}}
    with pytest.raises(PrepError, match=r"rope_parameters.rope_theta is 10000"):
        prepare_config(cfg, Edits())


@pytest.mark.parametrize(
    ("tok", "expected", "n_actions"),
    [
        (
            {"extra_special_tokens": ["a", "b"], "additional_special_tokens": ["b", "c"]},
            {"additional_special_tokens": ["b", "c", "a"]},
            1,
        ),
        ({"tokenizer_class": "PreTrainedTokenizerFast"}, {"tokenizer_class": "PreTrainedTokenizerFast"}, 0),
        ({"tokenizer_class": "LlamaTokenizerFast"}, {"tokenizer_class": "LlamaTokenizerFast"}, 0),
        ({"extra_special_tokens": {"mask": "[MASK]"}}, {"extra_special_tokens": {"mask": "[MASK]"}}, 0),
        ({}, {}, 0),
    ],
)
def test_tokenizer_edge_cases(tok: dict, expected: dict, n_actions: int) -> None:
    out, actions = prepare_tokenizer(tok, Edits())
    assert out == expected and len(actions) == n_actions


def test_tokenizer_non_list_value_refused() -> None:
    with pytest.raises(PrepError, match="extra_special_tokens must be a list or a mapping, found str"):
        prepare_tokenizer({"extra_special_tokens": "[MASK]"}, Edits())
