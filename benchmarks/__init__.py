"""Benchmark harness for lomond: run it with `python -m benchmarks`."""
