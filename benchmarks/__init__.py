"""Benchmarks of dvc-bus on the real local broker (issue 6). Run: ``python -m benchmarks run``."""
