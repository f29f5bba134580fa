"""What runs on compute nodes: the stage entry point submitit calls, the watcher, and the
flashinfer patch run inside the serve container (stdlib only, with only this package and
glm5_hpc mounted)."""
