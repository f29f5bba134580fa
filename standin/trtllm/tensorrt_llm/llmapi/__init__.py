"""STAND-IN for tensorrt_llm.llmapi (glm5_hpc test/demo equipment): the multi-node launch only."""
