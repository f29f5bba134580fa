"""STAND-IN for TensorRT-LLM (glm5_hpc test/demo equipment). Not NVIDIA software."""

__version__ = "1.3.0rc3"
