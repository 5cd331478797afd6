"""The bulk job driver: plan key slices, run them on the executors, report progress.

Entry point for spark-submit: ``python -m sqlembed.spark.job`` (reads settings, like the CLI).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlembed.db.tables import TableAccess, TableSpec
from sqlembed.spark.partition import STATS_SCHEMA, PartitionConfig, embed_slices

log = logging.getLogger(__name__)


@dataclass
class Progress:
    rows_total: int = 0
    slices_total: int = 0
    slices_done: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    started: float = 0.0

    @property
    def rows_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows_done / elapsed if elapsed > 0 and self.rows_done else 0.0


@dataclass
class JobResult:
    rows_read: int
    rows_embedded: int
    rows_failed: int
    seconds: float
    gpus: list[str]


def run(spark: Any, cfg: PartitionConfig, *, slices: int | None = None, job_group: str | None = None,
        on_progress: Callable[[Progress], None] | None = None) -> JobResult:
    sc = spark.sparkContext
    parallelism = sc.defaultParallelism
    access = TableAccess(cfg.spec)
    try:
        access.check()
        total, bounds = access.slice_bounds(slices or max(4 * parallelism, 1))
    finally:
        access.close()
    progress = Progress(rows_total=total, slices_total=len(bounds), started=time.monotonic())
    if not bounds:
        return JobResult(0, 0, 0, 0.0, [])
    rows = [(i, lo, hi) for i, (lo, hi) in enumerate(bounds)]
    # Keys may be ints or strings: carry them as strings only when they are strings.
    key_type = "string" if any(isinstance(v, str) for b in bounds for v in b if v is not None) else "long"
    df = spark.createDataFrame(rows, f"slice int, lo {key_type}, hi {key_type}").repartition(len(rows), "slice")
    out = df.mapInPandas(lambda it: embed_slices(it, cfg), STATS_SCHEMA)
    if job_group:
        sc.setJobGroup(job_group, f"sqlembed {cfg.spec.table}", interruptOnCancel=True)
    stop = threading.Event()

    def watch() -> None:
        tracker = sc.statusTracker()
        while not stop.wait(0.5):
            done = 0
            for sid in tracker.getActiveStageIds():
                info = tracker.getStageInfo(sid)
                if info is not None:
                    done = max(done, info.numCompletedTasks)
            progress.slices_done = max(progress.slices_done, done)
            # Slices hold about equal row counts: an estimate until the statistics arrive.
            progress.rows_done = progress.rows_total * progress.slices_done // max(progress.slices_total, 1)
            if on_progress is not None:
                on_progress(progress)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    try:
        stats = out.collect()
    finally:
        stop.set()
        watcher.join(2)
        if job_group:
            sc.setLocalProperty("spark.jobGroup.id", None)
    result = JobResult(
        rows_read=sum(r.rows_read for r in stats), rows_embedded=sum(r.embedded for r in stats),
        rows_failed=sum(r.failed for r in stats), seconds=time.perf_counter() - t0,
        gpus=sorted({r.gpu for r in stats if r.gpu}),
    )
    progress.slices_done = len(bounds)
    progress.rows_done, progress.rows_failed = result.rows_embedded, result.rows_failed
    if on_progress is not None:
        on_progress(progress)
    return result


def config_from(spec: TableSpec, *, model_dir: str, model_id: str, batch_rows: int, threads: int,
                fail_slice_first_attempt: int | None = None, fault_marker: str | None = None,
                db_retry_s: float = 60.0) -> PartitionConfig:
    return PartitionConfig(spec=spec, model_dir=model_dir, model_id=model_id, batch_rows=batch_rows, threads=threads,
                           fail_slice_first_attempt=fail_slice_first_attempt, fault_marker=fault_marker,
                           db_retry_s=db_retry_s)
