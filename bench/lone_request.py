#!/usr/bin/env python3
"""Run on demand (never in CI): ``python bench/lone_request.py [--set max_wait_ms=1]``.

Where a lone single-text request's time goes, hand-off by hand-off; see
``sqlembed.benchmark.lonepath``.
"""

from sqlembed.benchmark.lonepath import main

if __name__ == "__main__":
    raise SystemExit(main())
