"""Does the container image's TensorRT-LLM fit the profile's recipe variant? Pure, stdlib only
(it runs in the serve container too: jobs/image_check.py).

TensorRT-LLM serves GLM-5 natively from 1.3.0rc8 (NVIDIA's GLM-5 deployment guide): there the stock
variant applies and a source build is a 25-minute detour; before it, only the source build does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NATIVE_SINCE = "1.3.0rc8"
VERSION_CODE = "import importlib.metadata as m\ntry: print(m.version('tensorrt_llm'))\nexcept Exception: print('none')"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev\d+)?(?:[+ ].*)?$")
_PRE = {"a": 0, "b": 1, "rc": 2}


@dataclass(frozen=True)
class Fit:
    state: str  # ok | advice (works, but another variant fits better) | refused
    message: str


def version_key(version: str) -> tuple[int, ...] | None:
    """Orderable key of a TensorRT-LLM version such as 1.3.0rc8, 1.3.0 or 1.3.0.post1 (None if unparsable)."""
    m = _VERSION.match(version.strip())
    if not m:
        return None
    major, minor, patch, pre, pre_n, post = m.groups()
    stage = (_PRE[pre], int(pre_n)) if pre else (3, 0)  # a final release sorts after its candidates
    return (int(major), int(minor), int(patch), *stage, int(post or 0))


def serves_glm5_natively(version: str | None) -> bool:
    key = version_key(version) if version else None
    native = version_key(NATIVE_SINCE)
    return key is not None and native is not None and key >= native


def fit(variant: str, version: str | None, image: str) -> Fit:
    """`version`: the image's TensorRT-LLM (None: not installed)."""
    has = f"TensorRT-LLM {version}" if version else "no TensorRT-LLM"
    if variant == "stock":
        if serves_glm5_natively(version):
            return Fit("ok", f"{image} has {has}, which serves GLM-5 natively")
        fix = f"set container.image to a release >= {NATIVE_SINCE}, or recipe.variant: source-build"
        return Fit("refused", f"recipe.variant stock needs TensorRT-LLM >= {NATIVE_SINCE} (GLM-5 served natively), "
                              f"but {image} has {has}: {fix}")  # fmt: skip
    if serves_glm5_natively(version):
        return Fit("advice", f"{image} has {has}, which serves GLM-5 natively: recipe.variant: stock would skip the "
                             "source build and its patches (NVIDIA's GLM-5 deployment guide)")  # fmt: skip
    return Fit("ok", f"{image} has {has}; the source build installs the patched wheel")
