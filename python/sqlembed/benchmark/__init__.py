"""Benchmarks, run on demand (``sqlembed bench`` / ``bench/throughput.py``), never in CI."""
