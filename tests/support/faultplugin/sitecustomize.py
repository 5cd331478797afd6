"""Test-only fault injection for bulk-job executor tasks, with no hook in the product.

Spark's Python workers import this module at start-up because the test suite puts this folder on
their PYTHONPATH (tests/conftest.py, the ``spark_local`` fixture). It wraps the SQLite target's
``write`` and ``write_chunks`` once; the wrapper reads the plan file named by SQLEMBED_TEST_FAULT_PLAN at every call,
so a test can arm it while the (reused) workers are already running. Plan (JSON):
``{"after_writes": 1, "marker": "/tmp/x"}``: the first task attempt (of any task) to complete that
many writes fails right after them, once: creating the marker file is the once-only flag across
worker processes, and it records what happened. ``{"always": true}``: every write of every attempt
fails before it writes (a job that fails). ``write_chunks`` is wrapped the same way. Without the variable
nothing happens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_WRITES: dict[tuple[int, int], int] = {}


def _plan() -> dict[str, Any] | None:
    path = os.environ.get("SQLEMBED_TEST_FAULT_PLAN")
    if not path or not Path(path).is_file():
        return None
    try:
        plan = json.loads(Path(path).read_text())
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None


def _fail_before() -> None:
    plan = _plan()
    if plan is not None and plan.get("always"):
        raise RuntimeError("injected failure before a write, every attempt (test)")


def _fail_after(done: int, rows: Any) -> int:
    plan = _plan()
    if plan is None or plan.get("always"):
        return done
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None or ctx.attemptNumber() != 0:
        return done
    key = (ctx.stageId(), ctx.partitionId())
    _WRITES[key] = _WRITES.get(key, 0) + 1
    if _WRITES[key] < int(plan.get("after_writes", 1)):
        return done
    try:
        fd = os.open(plan["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return done  # another task already failed once
    with os.fdopen(fd, "w") as f:
        f.write(f"partition {ctx.partitionId()} failed after {len(rows)} rows\n")
    raise RuntimeError(f"injected failure in partition {ctx.partitionId()} (test)")


def _install() -> None:
    try:
        from sqlembed.db.targets import sqlite
    except ImportError:
        return
    real_write, real_chunks = sqlite.SqliteTarget.write, sqlite.SqliteTarget.write_chunks

    def write(self: Any, info: Any, rows: Any, eid: Any) -> int:
        _fail_before()
        return _fail_after(real_write(self, info, rows, eid), rows)

    def write_chunks(self: Any, info: Any, rows: Any, eid: Any) -> int:
        _fail_before()
        return _fail_after(real_chunks(self, info, rows, eid), rows)

    sqlite.SqliteTarget.write = write  # type: ignore[method-assign]
    sqlite.SqliteTarget.write_chunks = write_chunks  # type: ignore[method-assign]


if os.environ.get("SQLEMBED_TEST_FAULT_PLAN"):
    _install()
