#!/usr/bin/env python3
"""STAND-IN for TensorRT-LLM's scripts/build_wheel.py (glm5_hpc test/demo equipment).

Takes the real script's flags, "compiles" for GLM5_STANDIN_BUILD_S seconds, and writes
build/tensorrt_llm-<version>-py3-none-any.whl. What the C++ source says at build time is baked
into the wheel, so a wheel built without the recipe's fixes serves gibberish, as the real one does.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path

VERSION = os.environ.get("GLM5_STANDIN_VERSION", "1.3.0rc3")  # the stock stand-in image is built as a later release
ROOT = Path(__file__).resolve().parent.parent
ATTENTION_OP = ROOT / "cpp/tensorrt_llm/common/attentionOp.cpp"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="[STAND-IN] TensorRT-LLM wheel build")
    p.add_argument("--fast_build", "-f", action="store_true")
    p.add_argument("--cuda_architectures", "-a", default="all")
    p.add_argument("--job_count", "-j", type=int, default=os.cpu_count())
    p.add_argument("--no-venv", dest="no_venv", action="store_true")
    p.add_argument("--clean", "-c", action="store_true")
    p.add_argument("--use_ccache", "-ccache", action="store_true")
    p.add_argument("--dist_dir", default=None)
    p.add_argument("--build_dir", default=None)
    return p.parse_args(argv)


def compiled_attention() -> dict[str, object]:
    src = ATTENTION_OP.read_text()
    return {
        "context_head_size_v": "v_head_dim" if "fmhaParams.headSizeV = mMLAParams.v_head_dim;" in src else "qk_nope_head_dim",
        "context_fmha_unsupported": "warn"
        if "FMHA not supported for context MLA, falling back to unfused MHA." in src
        else "abort",
    }


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(dist_dir: Path, build_info: dict[str, object]) -> Path:
    dist_dir.mkdir(parents=True, exist_ok=True)
    wheel = dist_dir / f"tensorrt_llm-{VERSION}-py3-none-any.whl"
    info = f"tensorrt_llm-{VERSION}.dist-info"
    files: dict[str, bytes] = {}
    pkg = ROOT / "tensorrt_llm"
    for path in sorted(pkg.rglob("*.py")):
        files[str(path.relative_to(ROOT))] = path.read_bytes()
    files["tensorrt_llm/_build_info.json"] = json.dumps(build_info, indent=1).encode()
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: {VERSION}\n"
        "Summary: STAND-IN for TensorRT-LLM (glm5_hpc test/demo equipment)\n"
    ).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = (
        b"[console_scripts]\ntrtllm-serve = tensorrt_llm.commands.serve:main\n"
        b"trtllm-llmapi-launch = tensorrt_llm.llmapi.launch:main\n"
    )
    record = [record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    os.replace(tmp, wheel)
    return wheel


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print("[STAND-IN] TensorRT-LLM build_wheel.py (glm5_hpc test/demo equipment, not TensorRT-LLM)")
    print(f"-- CMAKE_CUDA_ARCHITECTURES={args.cuda_architectures} fast_build={args.fast_build} jobs={args.job_count}")
    build_s = float(os.environ.get("GLM5_STANDIN_BUILD_S", "2"))
    steps = 10
    for i in range(1, steps + 1):
        time.sleep(build_s / steps)
        print(f"[{i * 10:3d}%] Building CXX object tensorrt_llm/common/attentionOp.cpp.o", flush=True)
    info = {"version": VERSION, "cuda_architectures": args.cuda_architectures, **compiled_attention()}
    if os.environ.get("GLM5_STANDIN_NATIVE_GLM5") == "1":
        # Stands in for a later release that registers GlmMoeDsaForCausalLM and fixed the kernels upstream.
        info.update(native_glm5=True, context_head_size_v="v_head_dim", context_fmha_unsupported="warn")
    dist = Path(args.dist_dir) if args.dist_dir else ROOT / "build"
    wheel = write_wheel(dist, info)
    print(f"Successfully built {wheel.name} into {dist}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
