#!/usr/bin/env python3
"""Run on a CUDA host (never in CI): ``python bench/gpu.py [--texts 20000]``."""

from sqlembed.benchmark.gpu import main

if __name__ == "__main__":
    raise SystemExit(main())
