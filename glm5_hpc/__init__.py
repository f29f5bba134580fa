"""glm5_hpc: serve GLM-5 NVFP4 with TensorRT-LLM on a Slurm cluster as one recorded chain of jobs.

This module stays import-free: `jobs.patch_flashinfer` runs inside the serve container with only
this package directory mounted and the container's own Python.
"""

__version__ = "0.1.0"
