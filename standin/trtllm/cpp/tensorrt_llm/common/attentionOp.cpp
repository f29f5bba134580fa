// STAND-IN (glm5_hpc test/demo equipment): an excerpt shaped like TensorRT-LLM's attentionOp.cpp.
// The two blocks inside `if (mIsMLAEnabled)` are the upstream text verbatim; the stand-in
// build_wheel.py reads them to decide how the "built" attention kernels behave.

namespace tensorrt_llm::common
{

template <typename T, typename KVCacheBuffer>
int AttentionOp::enqueueContext(EnqueueContextParams<T> const& params, cudaStream_t stream)
{
    if (mEnableContextFMHA)
    {
        MHARunnerParams fmhaParams{};
        if (mIsMLAEnabled)
        {
            // Luckily, for deepseek, qk_nope_head_dim is the same as v_head_dim in context phase.
            fmhaParams.headSizeV = mMLAParams.qk_nope_head_dim;
            fmhaParams.headSizeQkNope = mMLAParams.qk_nope_head_dim;
        }
        mFmhaDispatcher->run(fmhaParams);
    }
    return 0;
}

int AttentionOp::initialize() noexcept
{
    if (mEnableContextFMHA)
    {
        if (mIsMLAEnabled)
        {
            if (!mIsGenerationMLA)
            {
                TLLM_CHECK_WITH_INFO(
                    mFmhaDispatcher->isSupported(), "Deepseek should be supported by fmha in context part.");
            }
        }
    }
    if (mIsGenerationMLA)
    {
        fmhaParams.headSizeV = mMLAParams.kv_lora_rank;
    }
    return 0;
}

} // namespace tensorrt_llm::common
