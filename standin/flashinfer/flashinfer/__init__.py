"""STAND-IN for flashinfer (glm5_hpc test/demo equipment): only mla.py's shape check."""

__version__ = "0.2.0+standin"
