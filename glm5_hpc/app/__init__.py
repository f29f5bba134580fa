"""Use cases the CLI calls: submit, status, cancel, prep, patch-source, render."""
