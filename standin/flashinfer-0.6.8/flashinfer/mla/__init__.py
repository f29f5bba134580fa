"""STAND-IN for flashinfer/mla/ (0.6.8 and later; glm5_hpc test/demo equipment)."""

from flashinfer.mla._core import _check_trtllm_gen_mla_shape

__all__ = ["_check_trtllm_gen_mla_shape"]
