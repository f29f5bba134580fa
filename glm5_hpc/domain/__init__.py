"""Pure logic: no I/O, no subprocess, no clock. Stdlib-only modules here may run inside containers."""
