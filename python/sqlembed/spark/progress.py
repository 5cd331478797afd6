"""Progress of a bulk job per chunk, not per slice: executor tasks report each chunk they write to
the driver over a multiprocessing.connection (framing plus an HMAC challenge; the key travels in
the task closure). A retried task reports its slice again from zero; the driver keeps the newest
attempt of each slice, so rows are never counted twice."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressAddress:
    host: str
    port: int
    authkey: bytes


@dataclass
class SliceProgress:
    attempt: int = -1
    done: int = 0
    failed: int = 0
    read: int = 0


class ProgressServer:
    """Driver side: accepts task connections and keeps per-slice counts; ``on_change`` is called
    (from a reader thread) after every report."""

    def __init__(self, advertised_host: str, bind_host: str = "", port: int = 0,
                 on_change: Callable[[], None] | None = None) -> None:
        self._authkey = secrets.token_bytes(32)
        self._listener = Listener((bind_host, port), family="AF_INET", backlog=64, authkey=self._authkey)
        self.address = ProgressAddress(advertised_host, int(self._listener.address[1]), self._authkey)
        self._wake = (bind_host or "127.0.0.1", self.address.port)
        self._lock = threading.Lock()
        self.slices: dict[int, SliceProgress] = {}
        self.on_change = on_change
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="sqlembed-progress", daemon=True)
        self._thread.start()

    def totals(self) -> tuple[int, int, int]:
        """(rows written, rows failed, rows read) over the newest attempt of every slice."""
        with self._lock:
            return (sum(s.done for s in self.slices.values()), sum(s.failed for s in self.slices.values()),
                    sum(s.read for s in self.slices.values()))

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except AuthenticationError:
                log.warning("refused a progress connection that failed the key challenge")
                continue
            except (OSError, EOFError):
                if self._stopping.is_set():
                    return
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Connection) -> None:
        with contextlib.suppress(EOFError, OSError, ValueError), conn:
            while True:
                msg = json.loads(conn.recv_bytes(4096))
                sl, attempt = int(msg["slice"]), int(msg["attempt"])
                with self._lock:
                    cur = self.slices.setdefault(sl, SliceProgress())
                    if attempt < cur.attempt:
                        continue  # a late report from an attempt Spark already replaced
                    if attempt > cur.attempt:
                        self.slices[sl] = cur = SliceProgress(attempt)
                    cur.done, cur.failed, cur.read = int(msg["done"]), int(msg["failed"]), int(msg["read"])
                if self.on_change is not None:
                    self.on_change()

    def close(self) -> None:
        from sqlembed.spark.online.listener import stop_listener

        self._stopping.set()
        stop_listener(self._listener, self._thread, self._wake, self._authkey)


class ProgressReporter:
    """Executor side; reporting is best effort and never fails the task."""

    def __init__(self, address: ProgressAddress | None) -> None:
        self._conn: Connection | None = None
        if address is not None:
            try:
                self._conn = Client((address.host, address.port), family="AF_INET", authkey=address.authkey)
            except (OSError, EOFError, AuthenticationError) as exc:
                log.warning("progress reports disabled for this task: %s", exc)

    def report(self, sl: int, attempt: int, done: int, failed: int, read: int) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send_bytes(json.dumps({"slice": sl, "attempt": attempt, "done": done, "failed": failed,
                                              "read": read}).encode())
        except (OSError, ValueError):
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()


