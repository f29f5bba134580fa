"""Bundled cluster profiles (YAML), shipped so an installed glm5_hpc finds `--profile local`."""
