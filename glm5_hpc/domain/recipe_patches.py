"""The recipe's source patches (Step 4) and flashinfer patch (Step 7) as named records. Stdlib only."""

from __future__ import annotations

from glm5_hpc.domain.patching import TextPatch

ATTENTION_OP = "cpp/tensorrt_llm/common/attentionOp.cpp"

HEAD_SIZE_V = TextPatch(
    name="mla-context-head-size-v",
    path=ATTENTION_OP,
    old="            fmhaParams.headSizeV = mMLAParams.qk_nope_head_dim;\n",
    new="            fmhaParams.headSizeV = mMLAParams.v_head_dim;\n",
    why="GLM-5 has v_head_dim 256 != qk_nope_head_dim 192; the context FMHA must use v_head_dim",
    verify="`grep -n 'headSizeV = mMLAParams' " + ATTENTION_OP + "` (the context line must use v_head_dim)",
)

FMHA_CHECK_TO_WARNING = TextPatch(
    name="mla-context-fmha-check-to-warning",
    path=ATTENTION_OP,
    old=(
        "            if (!mIsGenerationMLA)\n"
        "            {\n"
        "                TLLM_CHECK_WITH_INFO(\n"
        '                    mFmhaDispatcher->isSupported(), "Deepseek should be supported by fmha in context part.");\n'
        "            }"
    ),
    new=(
        "            if (!mIsGenerationMLA && !mFmhaDispatcher->isSupported())\n"
        "            {\n"
        '                TLLM_LOG_WARNING("FMHA not supported for context MLA, falling back to unfused MHA.");\n'
        "            }"
    ),
    why="safety net: an unsupported context FMHA combination logs a warning instead of aborting",
    verify="`grep -n 'FMHA not supported for context MLA' " + ATTENTION_OP + "`",
)

SOURCE_PATCHES = (HEAD_SIZE_V, FMHA_CHECK_TO_WARNING)

FLASHINFER_MLA_CHECK = TextPatch(
    name="flashinfer-mla-qk-nope-head-dim",
    path="mla.py",
    old="    if qk_nope_head_dim != 128:\n",
    new="    if False and qk_nope_head_dim != 128:\n",
    why="after absorption the kernel sees d_qk=576, d_v=512 whatever qk_nope_head_dim is (GLM-5: 192)",
    verify="`grep -n qk_nope_head_dim flashinfer/mla.py`",
)
