"""Runs inside executor Python workers: stream a key slice's pending rows, embed, write, report.

Per task, three stages overlap through bounded queues so the engine never waits on the database:
a reader thread pulls keyset pages of pending rows (decided by the database: unchanged texts
never cross the network), the task's thread embeds one chunk while a writer thread writes the
previous one (vectors plus state rows in one transaction). Database calls and ONNX Runtime both
release the GIL. The engine is the Python worker's cached one (spark/engines.py), on the GPU
Spark assigned to the task if any.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlembed.db.targets import EmbeddingId, PendingRow, TableInfo, TableSpec, WriteRow
from sqlembed.db.targets.spec import ChunkRow, ChunkVector
from sqlembed.engine.config import EngineSettings
from sqlembed.engine.store import Manifest
from sqlembed.spark.progress import ProgressAddress, ProgressReporter

log = logging.getLogger(__name__)

STATS_SCHEMA = "slice int, rows_read long, embedded long, failed long, seconds double, gpu string"
SLICES_SCHEMA = "slice int, lo {key}, hi {key}, keys string"
"""Each task's work: a key range [lo, hi), or (a change-driven sync) a JSON list of changed keys."""
_DONE = object()


@dataclass(frozen=True)
class PartitionConfig:
    """Everything an executor task needs, resolved on the driver and shipped frozen."""

    spec: TableSpec
    info: TableInfo
    engine: EngineSettings
    manifest: Manifest
    """Read once by the driver's plan; the executor opens its engine with it."""
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


def _pages(target: Any, cfg: PartitionConfig, lo: Any, hi: Any, keys: list[Any] | None) -> Iterator[list[PendingRow]]:
    if keys is None:
        yield from target.pending_pages(cfg.info, lo, hi, cfg.eid, cfg.page_rows)
        return
    for i in range(0, len(keys), cfg.page_rows):  # a change-driven sync: only the keys that changed
        page = target.pending_for_keys(cfg.info, keys[i: i + cfg.page_rows], cfg.eid)
        if page:
            yield page


def chunk_pieces(emb: Any, eid: EmbeddingId, texts: list[str]) -> list[list[Any]]:
    """Each text's chunks as a chunk-table job embeds them (a dry run counts the same ones)."""
    assert eid.chunk_tokens is not None
    # The prompt and the special tokens count against the model's length, as in the online path.
    budget = min(eid.chunk_tokens, emb.tokenizer.max_length - 2 - emb.tokenizer.prompt_tokens(
        emb.manifest.prompt_for(eid.prompt)))
    return [emb.tokenizer.chunks(t, budget, min(eid.chunk_overlap, budget // 2 - 1)) for t in texts]


def _embed_rows(target: Any, emb: Any, cfg: PartitionConfig, chunk: list[PendingRow]) -> list[Any]:
    """What the writer writes for a chunk of pending rows: one vector per row, or every row's chunks."""
    from sqlembed.engine.pooling import truncate_dimensions

    eid = cfg.eid

    def vectors(texts: list[str]) -> Any:
        return truncate_dimensions(emb.embed(texts, input_type=eid.prompt), eid.dimensions,
                                   normalize=emb.manifest.normalize)

    texts = [r.text or "" for r in chunk]  # the reader passes on only rows with a text and its hash
    hashes = [r.hash or b"" for r in chunk]
    if not cfg.info.chunked:
        return [WriteRow(r.key, h, v) for r, h, v in zip(chunk, hashes, vectors(texts), strict=True)]
    pieces = chunk_pieces(emb, eid, texts)
    flat = [c.text for cs in pieces for c in cs]
    vecs = iter(vectors(flat)) if flat else iter(())
    rows = []
    for r, t, h, cs in zip(chunk, texts, hashes, pieces, strict=True):
        units = [target.text_units(t, c.offset, c.length) for c in cs]
        rows.append(ChunkRow(r.key, h, [ChunkVector(c.no, off, n, next(vecs)) for c, (off, n) in zip(cs, units,
                                                                                                  strict=True)]))
    return rows


def run_slice(target: Any, emb: Any, cfg: PartitionConfig, lo: Any, hi: Any,
              on_chunk: Callable[[int, int, int], None], keys: list[Any] | None = None) -> tuple[int, int, int]:
    """(rows read, rows written, rows failed) for one key slice (or one list of changed keys);
    ``on_chunk`` gets running totals."""

    chunks: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_chunks)
    written: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_chunks)
    stop = threading.Event()
    counts = {"read": 0, "failed": 0, "done": 0}
    lock = threading.Lock()

    def read() -> None:
        pending: list[PendingRow] = []
        try:
            for page in _pages(target, cfg, lo, hi, keys):
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
            # Polled, not a blocking get: when the reader or the embedding fails, nothing more is
            # queued, and the task must end at once (each failed attempt used to wait out the
            # 30 s join below before Spark could retry it).
            try:
                item = written.get(timeout=0.2)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _DONE:
                return
            done = (target.write_chunks(cfg.info, item, cfg.eid) if cfg.info.chunked
                    else target.write(cfg.info, item, cfg.eid))
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
            rows = _embed_rows(target, emb, cfg, chunk)
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


def _native(value: Any) -> Any:
    """A bound from a pandas frame as a Python value: None for a missing one, and never a numpy
    scalar, which sqlite3 would bind as a BLOB (every integer compares below a BLOB)."""
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def embed_slices(batches: Iterator[Any], cfg: PartitionConfig) -> Iterator[Any]:
    """mapInPandas body: input rows are (slice, lo, hi); output rows are per-slice statistics."""
    import pandas as pd
    from pyspark import TaskContext

    from sqlembed.db.targets import open_target
    from sqlembed.spark.engines import task_engine

    emb, gpu = task_engine(cfg.engine, cfg.manifest)
    target = open_target(cfg.spec, retry_s=cfg.db_retry_s)
    reporter = ProgressReporter(cfg.progress)
    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0
    try:
        for frame in batches:
            for sl, lo, hi, keys_json in frame.itertuples(index=False):
                t0 = time.perf_counter()
                keys = None if keys_json is None or (isinstance(keys_json, float) and pd.isna(keys_json)) \
                    else json.loads(keys_json)
                def on_chunk(done: int, failed: int, read: int, sl: int = int(sl)) -> None:
                    reporter.report(sl, attempt, done, failed, read)

                read, done, failed = run_slice(target, emb, cfg, _native(lo), _native(hi), on_chunk, keys)
                reporter.report(int(sl), attempt, done, failed, read)
                yield pd.DataFrame([{"slice": int(sl), "rows_read": read, "embedded": done, "failed": failed,
                                     "seconds": time.perf_counter() - t0, "gpu": gpu or ""}])
    finally:
        reporter.close()
        target.close()
