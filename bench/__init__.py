"""Benchmark runner: `python -m bench` (see docs/benchmarks.md)."""
