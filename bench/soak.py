#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/soak.py --seconds 600`` (the 60 s version runs in make test)."""

from sqlembed.benchmark.soak import main

if __name__ == "__main__":
    raise SystemExit(main())
