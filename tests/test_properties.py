"""Property-based tests (hypothesis): profile validation never lets a shell or #SBATCH
metacharacter through, the patchers are exact and idempotent on any surrounding text, and the
checkpoint edits keep every other key and are idempotent."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glm5_hpc.domain.model_prep import Edits, prepare_config, prepare_tokenizer
from glm5_hpc.domain.patching import PatchState, apply, classify
from glm5_hpc.domain.profile import parse_profile
from glm5_hpc.domain.recipe_patches import FLASHINFER_MLA_CHECK, SOURCE_PATCHES
from glm5_hpc.errors import ProfileError
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "cluster_profiles" / "local.yaml").read_text())
DANGEROUS = set(";&|`$()<>\\\"' \t\n\r#*?![]{}~\x00")
SCRIPT_KEYS = [
    ("stages", "serve", "partition"),
    ("slurm", "account"),
    ("slurm", "qos"),
    ("work_dir",),
    ("model", "path"),
    ("container", "image"),
    ("recipe", "source", "branch"),
    ("recipe", "source", "repo"),
    ("stages", "serve", "mem"),
    ("stages", "serve", "time"),
    ("stages", "serve", "gpu_type"),
    ("container", "model_mount"),
]
values = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)


def with_value(path: tuple[str, ...], value: object) -> dict:
    doc = copy.deepcopy(BASE)
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("path", SCRIPT_KEYS, ids=[".".join(p) for p in SCRIPT_KEYS])
@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_accepted_script_values_hold_no_metacharacter(path: tuple[str, ...], value: str) -> None:
    try:
        profile = parse_profile(yaml.safe_dump(with_value(path, value)), "p.yaml", "p")
    except ProfileError as exc:
        assert "\n" not in str(exc)
        return
    accepted = profile.model_dump(by_alias=True)
    for key in path:
        accepted = accepted[key]
    # an image may hold '#', pyxis's registry separator (nvcr.io#nvidia/...): it never reaches an
    # #SBATCH line and is always quoted in scripts; every other value holds no metacharacter at all
    allowed = {"#"} if path == ("container", "image") else set()
    assert not (set(str(accepted)) & (DANGEROUS - allowed)), accepted


@settings(max_examples=150, deadline=None, derandomize=True)
@given(flags=st.lists(values, min_size=1, max_size=4), env_value=values)
def test_run_flags_and_env_values(flags: list[str], env_value: str) -> None:
    for doc in (with_value(("container", "run_flags"), flags), with_value(("container", "env"), {"X": env_value})):
        try:
            profile = parse_profile(yaml.safe_dump(doc), "p.yaml", "p")
        except ProfileError:
            continue
        assert all(not (set(f) & DANGEROUS) for f in profile.container.run_flags)
        assert all("\n" not in v and "\r" not in v and "\x00" not in v for v in profile.container.env.values())


text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=300)


@pytest.mark.parametrize("patch", [*SOURCE_PATCHES, FLASHINFER_MLA_CHECK], ids=lambda p: p.name)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(prefix=text, suffix=text)
def test_patch_is_exact_and_idempotent(patch: object, prefix: str, suffix: str) -> None:
    p = patch  # type: ignore[assignment]
    source = prefix + "\n" + p.old + "\n" + suffix  # type: ignore[attr-defined]
    if source.count(p.old) != 1 or p.new in source:  # type: ignore[attr-defined]
        return  # the surrounding text happens to contain a known snippet itself
    assert classify(p, source) is PatchState.NEEDED  # type: ignore[arg-type]
    patched = apply(p, source)  # type: ignore[arg-type]
    assert patched == prefix + "\n" + p.new + "\n" + suffix  # type: ignore[attr-defined]
    assert classify(p, patched) is PatchState.APPLIED  # type: ignore[arg-type]


@pytest.mark.parametrize("patch", [*SOURCE_PATCHES, FLASHINFER_MLA_CHECK], ids=lambda p: p.name)
@settings(max_examples=200, deadline=None, derandomize=True)
@given(source=text)
def test_unrelated_text_is_drift(patch: object, source: str) -> None:
    p = patch  # type: ignore[assignment]
    if p.old in source or p.new in source:  # type: ignore[attr-defined]
        return
    assert classify(p, source) is PatchState.DRIFT  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
GLM5 = {"architectures": ["GlmMoeDsaForCausalLM"], "model_type": "glm_moe_dsa", "rope_parameters": {"rope_theta": 1000000}}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    extra=st.dictionaries(
        st.text(max_size=12).filter(lambda k: k not in (*GLM5, "rope_theta", "rope_scaling")), json_values, max_size=6
    )
)
def test_config_edits_keep_other_keys_and_are_idempotent(extra: dict) -> None:
    out, actions = prepare_config({**GLM5, **extra}, Edits())
    assert actions and all(out[k] == v for k, v in extra.items())
    again, more = prepare_config(out, Edits())
    assert again == out and more == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    tok=st.dictionaries(
        st.sampled_from(["tokenizer_class", "extra_special_tokens", "additional_special_tokens", "eos_token"]),
        st.lists(st.text(max_size=5), max_size=4) | st.text(max_size=20),
        max_size=4,
    )
)
def test_tokenizer_edits_are_defined_for_any_shape(tok: dict) -> None:
    from glm5_hpc.errors import PrepError

    try:
        out, _ = prepare_tokenizer(tok, Edits())
    except PrepError as exc:
        assert "must be a list" in str(exc)
        return
    assert not isinstance(out.get("extra_special_tokens"), list)
    again, more = prepare_tokenizer(out, Edits())
    assert again == out and more == []
