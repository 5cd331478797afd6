"""A front process (started by fronts/host.py): ``python -m sqlembed.fronts RUN_DIR``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sqlembed.fronts.host import run_front

if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("SQLEMBED_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s[front %(process)d]: %(message)s")
    run_front(Path(sys.argv[1]))
