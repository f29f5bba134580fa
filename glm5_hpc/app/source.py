"""`glm5_hpc patch-source SRC`: the recipe's C++ fixes (Step 4) with their Verify step."""

from __future__ import annotations

from pathlib import Path

from glm5_hpc.adapters.patch_files import PatchOutcome, apply_patches
from glm5_hpc.domain.recipe_patches import SOURCE_PATCHES


def patch_source(src: Path, check: bool = False) -> list[PatchOutcome]:
    return apply_patches(src, SOURCE_PATCHES, check=check)
