"""STAND-IN for flashinfer/mla/_core.py (0.6.8 and later; glm5_hpc test/demo equipment): the shape
check as released, without a qk_nope_head_dim condition."""


def _check_trtllm_gen_mla_shape(qk_nope_head_dim: int, kv_lora_rank: int, qk_rope_head_dim: int) -> None:
    if kv_lora_rank != 512:
        raise ValueError(f"Expected kv_lora_rank == 512, got {kv_lora_rank}")
    if qk_rope_head_dim != 64:
        raise ValueError(f"Expected qk_rope_head_dim == 64, got {qk_rope_head_dim}")
