"""Inside the serve container: patch flashinfer's MLA shape check (recipe Step 7), report the state.

Run as `python3 -m jobs.patch_flashinfer --record FILE` with the tool's packages on PYTHONPATH.
Stdlib only: the container's Python has none of glm5_hpc's dependencies.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from glm5_hpc.adapters.files import write_atomic
from glm5_hpc.adapters.patch_files import apply_patches
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
        outcome = {"patch": FLASHINFER_MLA_CHECK.name, "state": "flashinfer not installed", "changed": False}
    else:
        try:
            (result,) = apply_patches(root, (FLASHINFER_MLA_CHECK,))
        except Glm5Error as exc:
            print(f"glm5_hpc: flashinfer patch failed: {exc}", file=sys.stderr)
            failed = {"patch": FLASHINFER_MLA_CHECK.name, "state": "drift", "error": str(exc)}
            write_atomic(args.record, json.dumps(failed).encode())
            return 1
        outcome = {"patch": result.patch, "file": result.file, "state": result.state, "changed": result.changed}
    print(f"glm5_hpc: flashinfer: {outcome['state']}{' -> patched' if outcome['changed'] else ''}", flush=True)
    write_atomic(args.record, (json.dumps(outcome) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
