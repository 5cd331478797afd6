#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/throughput.py [--texts N] [--precision fp32,int8]``.

Same as ``sqlembed bench``; see ``sqlembed.benchmark.throughput`` for the phases.
"""

from sqlembed.benchmark.throughput import main

if __name__ == "__main__":
    raise SystemExit(main())
