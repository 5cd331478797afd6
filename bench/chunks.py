#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/chunks.py sync|throughput|retrieval|all``."""

from sqlembed.benchmark.chunks import main

if __name__ == "__main__":
    raise SystemExit(main())
