"""Inside the serve container, before anything is installed: does the image's TensorRT-LLM fit the
profile's recipe variant (glm5_hpc/domain/image_fit.py)? Stdlib only. A stock variant on an image
that cannot serve GLM-5 stops the stage here, with the fix, instead of after a 40-minute load.

    python3 -m jobs.image_check --variant stock|source-build --image IMAGE --record FILE
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

from glm5_hpc.adapters.files import write_json_atomic
from glm5_hpc.domain.image_fit import fit


def installed_version() -> str | None:
    try:
        return importlib.metadata.version("tensorrt_llm")
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_check")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)
    version = installed_version()
    verdict = fit(args.variant, version, args.image)
    write_json_atomic(
        args.record, {"tensorrt_llm": version, "variant": args.variant, "fit": verdict.state, "message": verdict.message}
    )
    stream = sys.stderr if verdict.state == "refused" else sys.stdout
    print(f"glm5_hpc: image: {verdict.state}: {verdict.message}", file=stream, flush=True)
    return 2 if verdict.state == "refused" else 0


if __name__ == "__main__":
    sys.exit(main())
