#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/cpu_peers.py [--texts N] [--rounds R]``.

sqlembed's CPU precisions beside sentence-transformers (torch, ONNX, OpenVINO) and OpenVINO
static int8, on the same texts, in one run; see ``sqlembed.benchmark.cpu_peers``. The peers need
optimum-onnx, optimum-intel and datasets, whose pins may conflict with the project's
sentence-transformers: install them into a separate virtual environment together with sqlembed.
"""

from sqlembed.benchmark.cpu_peers import main

if __name__ == "__main__":
    raise SystemExit(main())
