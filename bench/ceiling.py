#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/ceiling.py [--part fronts|bulk] [--workers 1,2]``."""

from sqlembed.benchmark.ceiling import main

if __name__ == "__main__":
    raise SystemExit(main())
