"""The only places with side effects: files, Slurm, HTTP, containers."""
