"""Durable job records in a small SQLite file under SQLEMBED_STATE_DIR (a shared volume in production)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlembed.errors import JobNotFound, StoreUnavailable

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = frozenset({"succeeded", "failed", "cancelled"})


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    state: str
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

    def public(self) -> dict[str, Any]:
        return asdict(self)


class JobStore:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.path = state_dir / "jobs.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs "
                         "(id TEXT PRIMARY KEY, created TEXT NOT NULL, doc TEXT NOT NULL)")

    def create(self, request: dict[str, Any]) -> Job:
        job = Job(id=uuid.uuid4().hex, state="queued", request=request)
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

    def fail_interrupted(self) -> int:
        """At start-up: jobs a previous process left queued or running can no longer finish."""
        count = 0
        for job in self.list(limit=100_000):
            if job.state not in FINAL:
                job.state, job.finished = "failed", now()
                job.last_error = ("interrupted by a service restart; submit it again to resume "
                                  "(only rows still pending are embedded)")
                self.save(job)
                count += 1
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
