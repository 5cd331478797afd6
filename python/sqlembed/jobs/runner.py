"""Runs bulk jobs one after another on the process's long-lived SparkSession (created on first use)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from sqlembed.db.targets import TableSpec
from sqlembed.engine.embedder import Embedder
from sqlembed.errors import InvalidInput, NotReady, StoreUnavailable, summary
from sqlembed.jobs.dryrun import Pricing, dry_run
from sqlembed.jobs.store import FINAL, Job, JobStore, now
from sqlembed.spark.job import BulkJob, BulkSettings, Decision, Progress, decide, run
from sqlembed.spark.session import SessionHolder

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, bulk: BulkSettings, databases: dict[str, str], store: JobStore, session: SessionHolder,
                 engine: Callable[[], Embedder] | None = None, pricing: Pricing | None = None) -> None:
        """``databases``: the configured name -> URL (a request names a database, never a URL);
        ``engine``: the process's engine, which dry runs tokenize and time samples with."""
        self.bulk = bulk
        self._engine = engine
        self.pricing = pricing or Pricing()
        self.databases = databases
        self.store = store
        self._session = session
        # Spark spreads one job over the cluster; running jobs one at a time keeps their
        # progress and cancellation simple and the database's write load bounded.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlembed-job")
        self._futures: dict[str, Future[None]] = {}
        self._decided: dict[str, tuple[BulkJob, Decision]] = {}
        self._cancelled: set[str] = set()

    def spark(self) -> Any:
        return self._session.get()

    def spec(self, request: dict[str, Any]) -> TableSpec:
        """The table spec (validated as it is built: names and the row filter, before any SQL)."""
        url = self.databases.get(request["db"])
        if url is None:
            raise InvalidInput(f"unknown database {request['db']!r}; configured names: "
                               f"{', '.join(sorted(self.databases)) or 'none (set SQLEMBED_DATABASES)'}",
                               param="db")
        return TableSpec(url, request["table"], request["key"], request["text"], request["vector"],
                         request.get("where"), request.get("target_table"), request.get("chunk_table"),
                         request.get("chunk_tokens"), request.get("chunk_overlap") or 0)

    def submit(self, request: dict[str, Any]) -> Job:
        """Decide the job (spark/job.decide: the model, the table in its database, the caller's
        rights, the dimensions), record it and queue it. Blocking: call it off the event loop."""
        job = self._job(request)
        decision = decide(_answering(job))
        record = self.store.create(request)
        self._decided[record.id] = (job, decision)
        self._futures[record.id] = self._pool.submit(self._run, record.id)
        return record

    def _job(self, request: dict[str, Any]) -> BulkJob:
        return self.bulk.job(self.spec(request), dimensions=request.get("dimensions"),
                             batch_rows=request.get("batch_rows"), expect_database=request.get("expect_database"),
                             sync=request.get("sync"))

    def dry_run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The checks ``submit`` makes, then what the job would do; nothing recorded or written. Blocking."""
        if self._engine is None:
            raise NotReady("dry runs need the service's engine, which this process does not hold")
        return dry_run(_answering(self._job(request)), self._engine(), self.pricing)

    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job.state in FINAL:
            return job
        self._cancelled.add(job_id)
        if job.state == "queued":
            job.state, job.finished, job.last_error = "cancelled", now(), "cancelled before it started"
            self.store.save(job)
            return job
        spark = self._session.peek()
        if spark is not None:
            spark.sparkContext.cancelJobGroup(job_id)
        return job

    def backlog(self) -> int:
        return sum(1 for j in self.store.list(limit=1000) if j.state in ("queued", "running"))

    def _run(self, job_id: str) -> None:
        bulk_job, decision = self._decided.pop(job_id)
        job = self.store.get(job_id)
        if job_id in self._cancelled or job.state != "queued":
            return
        job.state, job.started = "running", now()
        if (problem := self._record(job)) is not None:
            log.error("job %s not started: %s", job_id, problem)
            return

        def on_progress(p: Progress) -> None:
            job.rows_done, job.rows_failed, job.rows_per_s = p.rows_done, p.rows_failed, round(p.rows_per_s, 2)
            job.rows_total = p.rows_total
            # Progress is advisory; the rows themselves are in the database.
            if job.state == "running" and (problem := self._record(job)) is not None:
                log.warning("job %s: progress not recorded: %s", job_id, problem)

        try:
            result = run(self.spark(), bulk_job, decision=decision, job_group=job_id, on_progress=on_progress)
            job.rows_total, job.rows_done, job.rows_failed = result.rows_read, result.rows_embedded, result.rows_failed
            job.rows_per_s = round(result.rows_embedded / result.seconds, 2) if result.seconds else 0.0
            job.gpus = result.gpus
            job.rows_deleted, job.mode = result.rows_deleted, result.mode
            job.request = {**job.request, "dimensions": result.dimensions}
            job.state = "succeeded"
        except Exception as exc:
            if job_id in self._cancelled:
                job.state, job.last_error = "cancelled", "cancelled while running; rows written so far are kept"
            else:
                job.state = "failed"
                # Spark wraps executor errors in pages of JVM text: the summary keeps the Python message.
                job.last_error = summary(exc, limit=2000)
                log.error("job %s failed: %s", job_id, job.last_error)
        job.finished = now()
        if (problem := self._record(job)) is not None:
            log.error("job %s ended %s but its record could not be written: %s", job_id, job.state, problem)

    def _record(self, job: Job) -> str | None:
        """Save the job's record; the store's complaint when it cannot be written (disk full, say)."""
        try:
            self.store.save(job)
        except StoreUnavailable as exc:
            return exc.message
        return None

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        fut = self._futures.get(job_id)
        if fut is not None:
            fut.result(timeout=timeout)
        return self.store.get(job_id)

    def close(self) -> None:
        for job_id, fut in self._futures.items():
            if not fut.done():
                self.cancel(job_id)
        self._pool.shutdown(wait=True, cancel_futures=True)


def _answering(job: BulkJob) -> BulkJob:
    """A submission or a dry run answers within SQL Server's wait: a short retry budget there (the
    run itself keeps the job's)."""
    return replace(job, db_retry_s=min(job.db_retry_s, 10.0))
