"""Benchmark scripts (run as `python benchmarks/<name>.py`) and their results module."""
