#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/placement.py [--texts 1500] [--clients 32]``."""

from sqlembed.benchmark.placement import main

if __name__ == "__main__":
    raise SystemExit(main())
