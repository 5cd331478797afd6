#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/rowbyrow.py [--texts N] [--baseline-src DIR]``.

SQL Server's row-by-row pattern (one text per call, calls one after another) against the engine
in process, over HTTP and HTTPS, and against llama.cpp's server; see
``sqlembed.benchmark.rowbyrow``. ``bench/llama_cpp.sh`` builds the llama.cpp phase's server.
"""

from sqlembed.benchmark.rowbyrow import main

if __name__ == "__main__":
    raise SystemExit(main())
