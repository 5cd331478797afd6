"""The bulk job driver: decide the job once (resolved table, model manifest, embedding identity,
dimensions), plan key slices in one query or the changed keys, run them on the executors, report
progress per chunk.

Every rule a bulk job obeys is checked here, once, on the driver; the frozen ``Decision`` and
``PartitionConfig`` travel to the executors, which never read the manifest or check the table
again. Composed by ``sqlembed.run.bulk`` (CLI, spark-submit) and the service's job runner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from sqlembed.db.targets import BulkTarget, EmbeddingId, PendingSummary, TableInfo, TableSpec, open_target
from sqlembed.db.targets.spec import SyncMode, VectorType
from sqlembed.engine.config import EngineSettings
from sqlembed.engine.opener import load_manifest
from sqlembed.engine.pooling import check_dimensions
from sqlembed.engine.store import Manifest
from sqlembed.errors import InvalidInput
from sqlembed.spark.partition import SLICES_SCHEMA, STATS_SCHEMA, PartitionConfig, embed_slices
from sqlembed.spark.progress import ProgressServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkJob:
    """What to embed and how; built once from settings and the request at the entry point."""

    spec: TableSpec
    engine: EngineSettings
    dimensions: int | None = None
    """Keep the first n dimensions and re-normalize; default: the column's VECTOR(n), else the model's."""
    vector_type: VectorType | None = None
    batch_rows: int = 512
    page_rows: int = 2048
    db_retry_s: float = 60.0
    expect_database: str | None = None
    progress_host: str | None = None
    progress_port: int = 0
    sync: SyncMode = "auto"
    """auto: only the changed rows where the table records changes (SQL Server Change Tracking, the
    SQLite change queue), else compare every row's hash in the database; changes: require (SQLite:
    create) the change record; hash: always compare every row."""


@dataclass(frozen=True)
class BulkSettings:
    """What every bulk job of a process shares, built once by its composition root."""

    engine: EngineSettings
    batch_rows: int = 512
    db_retry_s: float = 60.0
    vector_type: VectorType | None = None
    progress_host: str | None = None
    progress_port: int = 0

    def job(self, spec: TableSpec, **fields: Any) -> BulkJob:
        """A job for ``spec``; per-job ``fields`` (None: the default) override the settings'."""
        base: dict[str, Any] = {"engine": self.engine, "batch_rows": self.batch_rows, "db_retry_s": self.db_retry_s,
                                "vector_type": self.vector_type, "progress_host": self.progress_host,
                                "progress_port": self.progress_port}
        return BulkJob(spec=spec, **{**base, **{k: v for k, v in fields.items() if v is not None}})


@dataclass(frozen=True)
class Decision:
    """A job decided: the table as the catalog resolved it, the model's manifest, and the identity
    of the vectors it writes. Made once per job (``decide``), before anything is written."""

    info: TableInfo
    manifest: Manifest
    eid: EmbeddingId

@dataclass
class Progress:
    rows_total: int = 0
    slices_total: int = 0
    slices_done: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    rows_read: int = 0
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
    dimensions: int = 0
    rows_deleted: int = 0
    mode: str = "hash"
    """How pending rows were found: ``hash`` (every row compared in the database) or ``changes``."""


@dataclass(frozen=True)
class Plan:
    decision: Decision
    total: int
    work: list[tuple[Any, Any, str | None]]
    """Per task: a key range [lo, hi), or (None, None, JSON list of changed keys)."""
    deletes: list[Any]
    mode: str
    version: int | None
    """The change version to record once the job succeeds."""


def decide(job: BulkJob, target: BulkTarget | None = None) -> Decision:
    """Every check a job gets, once: the model is built, the table, its columns and the caller's
    rights (the catalog), the dimensions (at most the model's; the VECTOR column's size where it
    has one) and the vector type."""
    manifest = load_manifest(job.engine)
    own = target is None
    target = open_target(job.spec, retry_s=job.db_retry_s) if target is None else target
    try:
        info = target.check(job.expect_database)
    finally:
        if own:
            target.close()
    dims = job.dimensions or info.vector_dims or manifest.dimensions
    check_dimensions(manifest.dimensions, dims)  # asked for, or a column wider than the model
    if job.dimensions is not None and info.vector_dims is not None and job.dimensions != info.vector_dims:
        raise InvalidInput(f"{info.vector} is VECTOR({info.vector_dims}); dimensions={job.dimensions} does not fit it",
                           param="dimensions")
    if job.vector_type is not None and info.vector_dims is not None and job.vector_type != info.vector_type:
        raise InvalidInput(f"{info.vector} holds {info.vector_type} vectors; the job asks for {job.vector_type}")
    # Bulk rows are passages: the model's passage prompt (if it has one) is part of the identity.
    prompt = "passage" if manifest.prompt_for("passage") is not None else None
    eid = EmbeddingId(manifest.vector_id, dims, job.vector_type or info.vector_type, prompt,
                      job.spec.chunk_tokens if info.chunked else None, job.spec.chunk_overlap)
    return Decision(info, manifest, eid)


def plan(job: BulkJob, slices: int, target: BulkTarget, decision: Decision) -> Plan:
    """On the driver: the tables the decision needs, then either slice bounds in one query
    (compare every row) or the keys that changed since the last sync."""
    info = target.prepare(decision.info, decision.eid)
    decision = replace(decision, info=info)
    tracked = job.sync != "hash" and target.tracking(info)
    if job.sync == "changes" and not tracked:
        target.enable_tracking(info)  # SQLite: the trigger-fed queue; SQL Server: a DBA's step
        tracked = True
    version = changes = None
    if tracked:
        # Read the version before looking: changes committed meanwhile are seen again next time.
        version = target.current_version(info)
        changes = target.changes(info, target.sync_version(info, decision.eid))
    if changes is not None:
        groups = [changes.upserts[i::slices] for i in range(min(slices, len(changes.upserts)))]
        work: list[tuple[Any, Any, str | None]] = [
            (None, None, orjson.dumps(g, default=str).decode()) for g in groups if g]
        return Plan(decision, len(changes.upserts), work, changes.deletes, "changes", changes.version)
    total, bounds = target.slice_bounds(info, slices)
    return Plan(decision, total, [(lo, hi, None) for lo, hi in bounds], target.deleted_keys(info),
                "changes" if tracked else "hash", version)


def pending(job: BulkJob, decision: Decision, target: BulkTarget, sample_rows: int) -> tuple[PendingSummary, str]:
    """What the job would embed (rows: exactly those ``plan`` and the executors' reads would select;
    their texts' stored size; a sample of their texts) and how it finds them (``hash`` or
    ``changes``). ``plan``'s selection, read only: the changed keys since the last sync where the
    table records changes, else every row compared in the database. Creates, enables and records
    nothing (``plan`` would create the target table and, for sync=changes on SQLite, the change
    queue: a dry run counts a missing target as every row missing its vector)."""
    info, eid = decision.info, decision.eid
    tracked = job.sync != "hash" and target.tracking(info)
    mode = "changes" if tracked or job.sync == "changes" else "hash"
    changes = target.changes(info, target.sync_version(info, eid)) if tracked else None
    if changes is None:
        return target.pending_summary(info, eid, sample_rows), mode
    rows = target.pending_for_keys(info, changes.upserts, eid) if changes.upserts else []
    texts = [r.text for r in rows if r.text]
    step = max(1, len(texts) // max(1, sample_rows))
    return PendingSummary(len(rows), sum(target.stored_bytes(t) for t in texts), texts[::step][:sample_rows]), mode


def run(spark: Any, job: BulkJob, *, decision: Decision | None = None, slices: int | None = None,
        job_group: str | None = None, on_progress: Callable[[Progress], None] | None = None) -> JobResult:
    """Run ``job``; ``decision``: made at submission (the service's job runner), else made here.
    One connection pool to the database on the driver for the whole job."""
    target = open_target(job.spec, retry_s=job.db_retry_s)
    try:
        decision = decision if decision is not None else decide(job, target)
        return _run(spark, job, target, decision, slices, job_group, on_progress)
    finally:
        target.close()


def _run(spark: Any, job: BulkJob, target: BulkTarget, decision: Decision, slices: int | None,
         job_group: str | None, on_progress: Callable[[Progress], None] | None) -> JobResult:
    sc = spark.sparkContext
    threads = job.engine.threads or int(sc.getConf().get("spark.task.cpus", "1"))
    p = plan(job, slices or max(4 * sc.defaultParallelism, 1), target, decision)
    eid = p.decision.eid
    progress = Progress(rows_total=p.total, slices_total=len(p.work), started=time.monotonic())
    # Rows gone from the table: their state rows and their chunks or target rows go too.
    deleted = target.delete_rows(p.decision.info, p.deletes) if p.deletes else 0
    if not p.work:
        _record_version(target, p)
        return JobResult(0, 0, 0, 0.0, [], eid.dimensions, deleted, p.mode)
    driver = job.progress_host or sc.getConf().get("spark.driver.host") or "127.0.0.1"
    last = [0.0]

    def changed() -> None:
        progress.rows_done, progress.rows_failed, progress.rows_read = server.totals()
        now = time.monotonic()
        if on_progress is not None and now - last[0] >= 0.5:
            last[0] = now
            on_progress(progress)

    server = ProgressServer(driver, "" if job.progress_host else driver, job.progress_port, on_change=changed)
    cfg = PartitionConfig(spec=job.spec, info=p.decision.info, engine=job.engine.with_threads(threads),
                          manifest=p.decision.manifest, eid=eid, batch_rows=job.batch_rows, page_rows=job.page_rows,
                          db_retry_s=job.db_retry_s, progress=server.address)
    rows = [(i, lo, hi, keys) for i, (lo, hi, keys) in enumerate(p.work)]
    # Keys may be ints or strings: carry them as strings only when they are strings.
    key_type = "string" if any(isinstance(v, str) for lo, hi, _ in p.work for v in (lo, hi) if v is not None) \
        else "long"
    df = spark.createDataFrame(rows, SLICES_SCHEMA.format(key=key_type)).repartition(len(rows), "slice")
    out = df.mapInPandas(lambda it: embed_slices(it, cfg), STATS_SCHEMA)
    if job_group:
        sc.setJobGroup(job_group, f"sqlembed {job.spec.table}", interruptOnCancel=True)
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

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    try:
        stats = out.collect()
    finally:
        stop.set()
        watcher.join(2)
        server.close()
        if job_group:
            sc.setLocalProperty("spark.jobGroup.id", None)
    result = JobResult(
        rows_read=sum(r.rows_read for r in stats), rows_embedded=sum(r.embedded for r in stats),
        rows_failed=sum(r.failed for r in stats), seconds=time.perf_counter() - t0,
        gpus=sorted({r.gpu for r in stats if r.gpu}), dimensions=eid.dimensions, rows_deleted=deleted,
        mode=p.mode,
    )
    _record_version(target, p)
    progress.slices_done = len(p.work)
    progress.rows_done, progress.rows_failed, progress.rows_read = (result.rows_embedded, result.rows_failed,
                                                                    result.rows_read)
    if on_progress is not None:
        on_progress(progress)
    return result


def _record_version(target: BulkTarget, p: Plan) -> None:
    if p.version is not None:
        target.save_sync_version(p.decision.info, p.decision.eid, p.version)
