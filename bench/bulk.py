#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/bulk.py [--rows 20000] [--spark local[2]]``."""

from sqlembed.benchmark.bulk import main

if __name__ == "__main__":
    raise SystemExit(main())
