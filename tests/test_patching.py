"""Source patches: applied / already applied / drift, verified (flashinfer: test_flashinfer.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from glm5_hpc.app.source import patch_source
from glm5_hpc.domain.patching import PatchState, classify, digest
from glm5_hpc.domain.recipe_patches import ATTENTION_OP, SOURCE_PATCHES
from glm5_hpc.errors import PatchDriftError
from tests.conftest import STANDIN


@pytest.fixture
def src(tmp_path: Path) -> Path:
    shutil.copytree(STANDIN / "trtllm", tmp_path / "src")
    return tmp_path / "src"


def test_applies_both_fixes_then_reports_already_applied(src: Path) -> None:
    first = patch_source(src)
    assert [(o.patch, o.state, o.changed) for o in first] == [
        ("mla-context-head-size-v", "needed", True),
        ("mla-context-fmha-check-to-warning", "needed", True),
    ]
    text = (src / ATTENTION_OP).read_text()
    assert "            fmhaParams.headSizeV = mMLAParams.v_head_dim;\n" in text
    assert "FMHA not supported for context MLA, falling back to unfused MHA." in text
    assert "Deepseek should be supported by fmha in context part." not in text
    # the generation-phase line must not be touched
    assert "        fmhaParams.headSizeV = mMLAParams.kv_lora_rank;\n" in text
    before = (src / ATTENTION_OP).stat().st_mtime_ns
    second = patch_source(src)
    assert [(o.state, o.changed) for o in second] == [("already applied", False), ("already applied", False)]
    assert (src / ATTENTION_OP).stat().st_mtime_ns == before


def test_check_mode_changes_nothing(src: Path) -> None:
    before = (src / ATTENTION_OP).read_bytes()
    assert [o.state for o in patch_source(src, check=True)] == ["needed", "needed"]
    assert (src / ATTENTION_OP).read_bytes() == before


def test_drift_is_an_error_naming_file_and_patch_and_writes_nothing(src: Path) -> None:
    path = src / ATTENTION_OP
    # upstream reformatted the first target; the second is still patchable, but nothing may be written
    path.write_text(
        path.read_text().replace("fmhaParams.headSizeV = mMLAParams.qk_nope_head_dim;", "fmhaParams.headSizeV = dims.v;")
    )
    before = path.read_bytes()
    with pytest.raises(PatchDriftError) as err:
        patch_source(src)
    msg = str(err.value)
    assert "mla-context-head-size-v" in msg and str(path) in msg and "neither the old nor the new text" in msg
    assert path.read_bytes() == before


def test_missing_file_is_drift(tmp_path: Path) -> None:
    with pytest.raises(PatchDriftError, match=r"does not exist; is .* the right source tree"):
        patch_source(tmp_path)


def test_old_text_twice_is_drift() -> None:
    p = SOURCE_PATCHES[0]
    assert classify(p, p.old + p.old) is PatchState.DRIFT


def test_patch_digest_changes_with_content() -> None:
    from dataclasses import replace

    changed = (replace(SOURCE_PATCHES[0], new=SOURCE_PATCHES[0].new + " "), SOURCE_PATCHES[1])
    assert digest(SOURCE_PATCHES) != digest(changed)
    assert digest(SOURCE_PATCHES) == digest(tuple(SOURCE_PATCHES))
