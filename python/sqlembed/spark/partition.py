"""Runs inside executor Python workers: stream a key slice's pending rows, embed, write, report.

Per task, three stages overlap through bounded queues so the engine never waits on the database:
a reader thread pulls keyset pages of pending rows (decided by the database: unchanged texts
never cross the network), the task's thread embeds one chunk while a writer thread writes the
previous one (vectors plus state rows in one transaction). Database calls and ONNX Runtime both
release the GIL. The engine is the Python worker's cached one (spark/engines.py), on the GPU
Spark assigned to the task if any.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlembed.db.targets import EmbeddingId, PendingRow, TableInfo, TableSpec, WriteRow
from sqlembed.engine.config import EngineSettings
from sqlembed.spark.progress import ProgressAddress, ProgressReporter

log = logging.getLogger(__name__)

STATS_SCHEMA = "slice int, rows_read long, embedded long, failed long, seconds double, gpu string"
_DONE = object()


@dataclass(frozen=True)
class PartitionConfig:
    """Everything an executor task needs, resolved on the driver and shipped frozen."""

    spec: TableSpec
    info: TableInfo
    engine: EngineSettings
    eid: EmbeddingId
    batch_rows: int = 512
    page_rows: int = 2048
    # How long a task keeps retrying an unreachable or locked database before the job fails.
    db_retry_s: float = 60.0
    progress: ProgressAddress | None = None
    queue_chunks: int = 2


class _Stage(threading.Thread):
    """A daemon thread whose exception is re-raised where the pipeline joins it."""

    def __init__(self, name: str, body: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._body = body
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as exc:  # handed to the task thread
            self.error = exc


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def run_slice(target: Any, emb: Any, cfg: PartitionConfig, lo: Any, hi: Any,
              on_chunk: Callable[[int, int, int], None]) -> tuple[int, int, int]:
    """(rows read, rows written, rows failed) for one key slice; ``on_chunk`` gets running totals."""
    from sqlembed.engine.pooling import truncate_dimensions

    chunks: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_chunks)
    written: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_chunks)
    stop = threading.Event()
    counts = {"read": 0, "failed": 0, "done": 0}
    lock = threading.Lock()

    def read() -> None:
        pending: list[PendingRow] = []
        try:
            for page in target.pending_pages(cfg.info, lo, hi, cfg.eid, cfg.page_rows):
                with lock:
                    counts["read"] += len(page)
                    counts["failed"] += sum(1 for r in page if r.text is None)
                pending.extend(r for r in page if r.text is not None)
                while len(pending) >= cfg.batch_rows:
                    if not _put(chunks, pending[: cfg.batch_rows], stop):
                        return
                    pending = pending[cfg.batch_rows :]
            if pending:
                _put(chunks, pending, stop)
        finally:
            _put(chunks, _DONE, stop)

    def write() -> None:
        while True:
            item = written.get()
            if item is _DONE:
                return
            done = target.write(cfg.info, item, cfg.eid)
            with lock:
                counts["done"] += done
                totals = counts["done"], counts["failed"], counts["read"]
            on_chunk(*totals)

    reader, writer = _Stage("sqlembed-read", read), _Stage("sqlembed-write", write)
    reader.start()
    writer.start()
    try:
        while True:
            if writer.error is not None:
                raise writer.error
            try:
                chunk = chunks.get(timeout=0.5)
            except queue.Empty:
                if reader.error is not None:
                    raise reader.error from None
                continue
            if chunk is _DONE:
                break
            vectors = truncate_dimensions(emb.embed([r.text for r in chunk], input_type=cfg.eid.prompt),
                                          cfg.eid.dimensions, normalize=emb.manifest.normalize)
            rows = [WriteRow(r.key, r.hash, v) for r, v in zip(chunk, vectors, strict=True)]
            if not _put(written, rows, stop) or writer.error is not None:
                break
        if reader.error is not None:
            raise reader.error
        _put(written, _DONE, stop)
        writer.join()
        if writer.error is not None:
            raise writer.error
    finally:
        stop.set()
        reader.join(timeout=30)
        writer.join(timeout=30)
    with lock:
        return counts["read"], counts["done"], counts["failed"]


def embed_slices(batches: Iterator[Any], cfg: PartitionConfig) -> Iterator[Any]:
    """mapInPandas body: input rows are (slice, lo, hi); output rows are per-slice statistics."""
    import pandas as pd
    from pyspark import TaskContext

    from sqlembed.db.targets import open_target
    from sqlembed.spark.engines import task_engine

    emb, gpu = task_engine(cfg.engine)
    target = open_target(cfg.spec, retry_s=cfg.db_retry_s)
    reporter = ProgressReporter(cfg.progress)
    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0
    try:
        for frame in batches:
            for sl, lo, hi in frame.itertuples(index=False):
                t0 = time.perf_counter()
                def on_chunk(done: int, failed: int, read: int, sl: int = int(sl)) -> None:
                    reporter.report(sl, attempt, done, failed, read)

                read, done, failed = run_slice(target, emb, cfg, None if pd.isna(lo) else lo,
                                               None if pd.isna(hi) else hi, on_chunk)
                reporter.report(int(sl), attempt, done, failed, read)
                yield pd.DataFrame([{"slice": int(sl), "rows_read": read, "embedded": done, "failed": failed,
                                     "seconds": time.perf_counter() - t0, "gpu": gpu or ""}])
    finally:
        reporter.close()
        target.close()
