"""Durable job records, where they are safe.

Two stores behind one interface: a SQLite file on the service's **local** disk (the default, a
single machine), or the ``sqlembed.jobs`` table in a target SQL Server (``SQLEMBED_JOB_STORE=db:<name>``;
one source of truth that T-SQL reads too and that survives a master restart on a new replica).
Never SQLite on a network share: its locking is unreliable there (SQLite's own documentation).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, get_args

from sqlembed.api.schemas.jobs import JobRecord, JobState
from sqlembed.errors import JobNotFound, StoreUnavailable, summary

STATES: tuple[JobState, ...] = get_args(JobState)
FINAL = frozenset({"succeeded", "failed", "cancelled"})


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    state: JobState
    request: dict[str, Any]  # never holds secrets: the database is a configured name
    created: str = field(default_factory=now)
    started: str | None = None
    finished: str | None = None
    rows_total: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    rows_per_s: float = 0.0
    last_error: str | None = None
    gpus: list[str] = field(default_factory=list)
    rows_deleted: int = 0
    mode: str | None = None

    def public(self) -> JobRecord:
        return cast(JobRecord, asdict(self))


class JobStore(Protocol):
    def create(self, request: dict[str, Any]) -> Job: ...
    def save(self, job: Job) -> None: ...
    def get(self, job_id: str) -> Job: ...
    def list(self, limit: int = 100) -> list[Job]: ...
    def close(self) -> None: ...


def new_job(request: dict[str, Any]) -> Job:
    return Job(id=uuid.uuid4().hex, state="queued", request=request)


def fail_interrupted(store: JobStore) -> int:
    """At start-up: jobs a previous process left queued or running can no longer finish."""
    count = 0
    for job in store.list(limit=100_000):
        if job.state not in FINAL:
            job.state, job.finished = "failed", now()
            job.last_error = ("interrupted by a service restart; submit it again to resume "
                              "(only rows still pending are embedded)")
            store.save(job)
            count += 1
    return count


class SqliteJobStore:
    """One SQLite file on local disk (WAL is safe there, and only there)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.path = path
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs "
                         "(id TEXT PRIMARY KEY, created TEXT NOT NULL, doc TEXT NOT NULL)")

    def create(self, request: dict[str, Any]) -> Job:
        job = new_job(request)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        try:
            with self._lock:
                self._db.execute("INSERT INTO jobs (id, created, doc) VALUES (?, ?, ?) "
                                 "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                                 (job.id, job.created, json.dumps(job.public())))
        except (sqlite3.OperationalError, OSError) as exc:
            # Disk full, read-only or I/O error: say so plainly; the caller decides what is lost.
            raise StoreUnavailable(f"the job store {self.path} cannot be written ({exc}); "
                                   "free space or fix the state directory, then retry") from exc

    def get(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute("SELECT doc FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job(**json.loads(row[0]))

    def list(self, limit: int = 100) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT doc FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [Job(**json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SqlServerJobStore:
    """``sqlembed.jobs`` in a target SQL Server (migration 010): the service writes each job's record
    into ``last_status`` and its state into ``state``; ``sqlembed.submit_job`` adds who submitted it."""

    def __init__(self, url: str) -> None:
        from sqlembed.db.connect import sqlalchemy_engine

        self.url = url
        self._engine = sqlalchemy_engine(url)

    def _run(self, what: str, fn: Any) -> Any:
        import sqlalchemy.exc

        try:
            with self._engine.begin() as conn:
                return fn(conn)
        except sqlalchemy.exc.DBAPIError as exc:
            raise StoreUnavailable(f"the job store (sqlembed.jobs) cannot be {what}: "
                                   f"{summary(exc.orig, limit=200)}") from None

    def create(self, request: dict[str, Any]) -> Job:
        job = new_job(request)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        from sqlalchemy import text

        params = {"id": job.id, "src": str(job.request.get("table", ""))[:300],
                  "tgt": job.request.get("target_table"), "state": job.state, "doc": json.dumps(job.public())}
        self._run("written", lambda c: c.execute(text(
            "MERGE sqlembed.jobs WITH (HOLDLOCK) AS j USING (SELECT CAST(:id AS nvarchar(64)) AS job_id) AS x "
            "ON j.job_id = x.job_id WHEN MATCHED THEN UPDATE SET state = :state, last_status = :doc, "
            "updated_at = SYSUTCDATETIME() WHEN NOT MATCHED THEN INSERT (job_id, source_table, target_table, state, "
            "last_status, updated_at) VALUES (:id, :src, :tgt, :state, :doc, SYSUTCDATETIME());"), params))

    def get(self, job_id: str) -> Job:
        from sqlalchemy import text

        doc = self._run("read", lambda c: c.execute(text(
            "SELECT last_status FROM sqlembed.jobs WHERE job_id = :id"), {"id": job_id}).scalar())
        if doc is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return Job(**json.loads(doc))

    def list(self, limit: int = 100) -> list[Job]:
        from sqlalchemy import text

        rows = self._run("read", lambda c: c.execute(text(
            "SELECT TOP (:n) last_status FROM sqlembed.jobs WHERE last_status IS NOT NULL "
            "ORDER BY submitted_at DESC"), {"n": limit}).fetchall())
        out = []
        for (doc,) in rows:
            try:
                out.append(Job(**json.loads(doc)))
            except (TypeError, ValueError):
                continue  # a row written by another tool
        return out

    def close(self) -> None:
        self._engine.dispose()


def open_store(url: str) -> JobStore:
    """``sqlite:///path`` (local disk) or a SQL Server URL / ODBC string holding ``sqlembed.jobs``."""
    if url.startswith("sqlite:///"):
        return SqliteJobStore(Path(url.removeprefix("sqlite:///")))
    return SqlServerJobStore(url)
