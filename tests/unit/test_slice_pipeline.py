"""The per-task read/embed/write pipeline (spark/partition.run_slice) ends its threads on failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from sqlembed.errors import DatabaseUnavailable
from sqlembed.spark.partition import run_slice


class _Unreadable:
    """A target whose pending-rows read fails, as a locked or unreachable database does."""

    def pending_pages(self, *_: Any) -> Iterator[list[Any]]:
        raise DatabaseUnavailable("the database stayed unavailable for 4 s while reading pending rows")
        yield []  # pragma: no cover - makes this a generator, as the real one is


def test_a_failed_read_ends_the_writer_at_once() -> None:
    # Before the writer polled its queue it waited on it forever, and the task sat out a 30 s join
    # per failed attempt before Spark could retry it (4 attempts: two minutes per failing slice).
    cfg = SimpleNamespace(queue_chunks=2, batch_rows=32, page_rows=64, info=SimpleNamespace(chunked=False),
                          eid=None)
    with pytest.raises(DatabaseUnavailable):
        run_slice(_Unreadable(), None, cfg, None, None, lambda *_: None)  # type: ignore[arg-type]
    alive = [t.name for t in threading.enumerate() if t.name in ("sqlembed-read", "sqlembed-write")]
    assert alive == [], f"pipeline threads still running after the task failed: {alive}"
