"""Runs inside executor Python workers: read a key slice, embed what is pending, write it back.

The engine is built once per Python worker (cached by model id) and survives across tasks and
jobs; when Spark assigned this task a GPU, its address is taken from TaskContext.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlembed.db.tables import TableSpec

log = logging.getLogger(__name__)

_ENGINES: dict[tuple[str, str], Any] = {}
STATS_SCHEMA = "slice int, rows_read long, embedded long, failed long, seconds double, gpu string"


@dataclass(frozen=True)
class PartitionConfig:
    spec: TableSpec
    model_dir: str
    model_id: str
    batch_rows: int
    threads: int
    # Fault injection for tests, honoured only where SQLEMBED_TEST_FAULTS=1: the slice whose first
    # attempt fails after its first chunk, and a file that records it.
    fail_slice_first_attempt: int | None = None
    fault_marker: str | None = None
    backend: str = "auto"
    # How long a task keeps retrying an unreachable or locked database before the job fails.
    db_retry_s: float = 60.0


def engine(model_dir: str, model_id: str, threads: int, backend: str = "auto", device: str | None = None) -> Any:
    cache_key = (model_dir, model_id)
    if cache_key not in _ENGINES:
        from sqlembed.engine.embedder import load_embedder
        from sqlembed.engine.store import ModelStore

        store = ModelStore(Path(model_dir))
        _ENGINES[cache_key] = load_embedder(store.path(model_id), store.get(model_id), threads=threads, spin=True,
                                            backend=backend, device=device)
    return _ENGINES[cache_key]


def task_gpu() -> str | None:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return None
    gpu = ctx.resources().get("gpu")
    return gpu.addresses[0] if gpu is not None and gpu.addresses else None


def embed_slices(batches: Iterator[Any], cfg: PartitionConfig) -> Iterator[Any]:
    """mapInPandas body: input rows are (slice, lo, hi); output rows are per-slice statistics."""
    import pandas as pd
    from pyspark import TaskContext

    from sqlembed.db.tables import TableAccess

    gpu = task_gpu()
    if gpu is not None:
        os.environ["SQLEMBED_CUDA_DEVICE"] = gpu
    emb = engine(cfg.model_dir, cfg.model_id, cfg.threads, cfg.backend, gpu)
    access = TableAccess(cfg.spec, retry_s=cfg.db_retry_s)
    try:
        ctx = TaskContext.get()
        for frame in batches:
            for sl, lo, hi in frame.itertuples(index=False):
                t0 = time.perf_counter()
                rows = access.pending(None if pd.isna(lo) else lo, None if pd.isna(hi) else hi, cfg.model_id)
                failed = sum(1 for r in rows if r.text is None)
                todo = [r for r in rows if r.text is not None]
                done = 0
                for i in range(0, len(todo), cfg.batch_rows):
                    chunk = todo[i : i + cfg.batch_rows]
                    vectors = emb.embed([r.text for r in chunk])
                    done += access.write([(r.key, r.text or "", v) for r, v in zip(chunk, vectors, strict=True)],
                                         cfg.model_id, emb.dimensions)
                    if (cfg.fail_slice_first_attempt == sl and ctx is not None and ctx.attemptNumber() == 0
                            and os.environ.get("SQLEMBED_TEST_FAULTS") == "1"):
                        if cfg.fault_marker:
                            Path(cfg.fault_marker).write_text(f"slice {sl} failed after {done} rows\n")
                        raise RuntimeError(f"injected failure in slice {sl} after {done} rows (test)")
                yield pd.DataFrame([{"slice": int(sl), "rows_read": len(rows), "embedded": done, "failed": failed,
                                     "seconds": time.perf_counter() - t0, "gpu": gpu or ""}])
    finally:
        access.close()
