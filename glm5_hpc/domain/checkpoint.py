"""What a GLM-5 checkpoint is, from its config.json and its files' sizes (never their contents). Pure.

- NVFP4: `quantization_config.quant_algo` NVFP4 (ModelOpt), served on Blackwell only;
- FP8: `quant_algo` FP8 / FP8_BLOCK_SCALES (ModelOpt) or `quant_method` fp8 (block-scaled, as
  zai-org/GLM-5-FP8 ships it), served on Hopper (compute capability 9.0) and later;
- BF16: no quantization_config.
"""

from __future__ import annotations

from typing import Any, Literal

Precision = Literal["nvfp4", "fp8", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("nvfp4", "fp8", "bf16")
MIN_COMPUTE_CAP: dict[Precision, tuple[int, int]] = {"nvfp4": (10, 0), "fp8": (8, 9), "bf16": (8, 0)}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def precision_of(config: dict[str, Any]) -> Precision:
    """The checkpoint's weight precision; ValueError naming what was found when it is none of the three."""
    quant = config.get("quantization_config")
    if quant is None:
        return "bf16"
    if not isinstance(quant, dict):
        raise ValueError(f"quantization_config is {type(quant).__name__}, expected a mapping")
    algo = str(quant.get("quant_algo") or "").upper()
    method = str(quant.get("quant_method") or "").lower()
    if algo == "NVFP4":
        return "nvfp4"
    if algo.startswith("FP8") or method == "fp8":
        return "fp8"
    raise ValueError(
        f"quantization_config names quant_algo {algo or '-'!r}, quant_method {method or '-'!r}: not NVFP4, FP8 or BF16"
    )


def weight_bytes(sizes: dict[str, int]) -> int:
    """Bytes of weight files among a checkpoint's {file name: size}."""
    return sum(size for name, size in sizes.items() if name.endswith(WEIGHT_SUFFIXES))
