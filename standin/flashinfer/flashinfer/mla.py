"""STAND-IN for flashinfer/mla.py (glm5_hpc test/demo equipment).

Holds the older upstream shape check verbatim; the stand-in trtllm-serve calls it at warmup
with GLM-5's qk_nope_head_dim (192) and fails, as the real stack does, until it is patched.
"""


def _check_trtllm_gen_mla_shape(qk_nope_head_dim: int, kv_lora_rank: int, qk_rope_head_dim: int) -> None:
    if qk_nope_head_dim != 128:
        raise ValueError(f"Expected qk_nope_head_dim == 128, got {qk_nope_head_dim}")
    if kv_lora_rank != 512:
        raise ValueError(f"Expected kv_lora_rank == 512, got {kv_lora_rank}")
    if qk_rope_head_dim != 64:
        raise ValueError(f"Expected qk_rope_head_dim == 64, got {qk_rope_head_dim}")
