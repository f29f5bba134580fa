"""STAND-IN for flashinfer 0.6.8 and later (glm5_hpc test/demo equipment): the `mla/` package layout,
whose MLA shape check has no qk_nope_head_dim condition (GLM-5's 192 needs nothing)."""

__version__ = "0.6.8+standin"
