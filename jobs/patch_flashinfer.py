"""Inside the serve container: give GLM-5 the flashinfer it needs (recipe Step 7), report the state.

Run as `python3 -m jobs.patch_flashinfer --record FILE` with the tool's packages on PYTHONPATH.
Stdlib only: the container's Python has none of glm5_hpc's dependencies. Only drift fails the
stage: a flashinfer that already accepts qk_nope_head_dim 192, or has no such check, is not needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.adapters.flashinfer_files import patch_flashinfer
from glm5_hpc.domain.recipe_patches import FLASHINFER_MLA_CHECK
from glm5_hpc.errors import Glm5Error


def flashinfer_dir() -> Path | None:
    spec = importlib.util.find_spec("flashinfer")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="patch_flashinfer")
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)
    root = flashinfer_dir()
    if root is None:
        doc: dict[str, object] = {"patch": FLASHINFER_MLA_CHECK.name, "state": "flashinfer not installed", "changed": False}
        print("glm5_hpc: flashinfer: not installed", flush=True)
    else:
        try:
            outcome = patch_flashinfer(root)
        except Glm5Error as exc:
            print(f"glm5_hpc: flashinfer patch failed: {exc}", file=sys.stderr)
            write_json_atomic(args.record, {"patch": FLASHINFER_MLA_CHECK.name, "state": "drift", "error": str(exc)})
            return 1
        doc = outcome.to_json()
        print(f"glm5_hpc: {outcome.line()}", flush=True)
    write_json_atomic(args.record, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
