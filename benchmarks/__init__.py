"""Benchmark suite: ``pytest benchmarks/`` (see benchmarks/README.md); not installed with apem."""
