"""The connected executor tasks as slots the batcher leases, and the local engine covering gaps."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from sqlembed.engine.placement import WAITING, Lease, LocalSlot
from sqlembed.engine.tokenizer import TokenIds
from sqlembed.spark.online.codec import F32, STOP, ProtocolError, decode_result, encode_batch

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Worker:
    conn: Connection
    executor: str
    gpu: str | None
    backend: str
    busy: bool = False
    batches: int = 0

    def describe(self) -> dict[str, Any]:
        return {"executor": self.executor, "gpu": self.gpu, "backend": self.backend, "batches": self.batches,
                "busy": self.busy}

    def call(self, batch: Sequence[TokenIds], timeout: float) -> tuple[F32, float]:
        self.conn.send_bytes(encode_batch(batch))
        if not self.conn.poll(timeout):
            raise TimeoutError(f"no answer within {timeout:g} s")
        return decode_result(self.conn.recv_bytes(), len(batch))


@dataclass
class PoolStats:
    lost_workers: int = 0
    last_error: str | None = None


@dataclass
class WorkerPool:
    """Every field below ``cond`` is read and written under it."""

    mode: str
    local: LocalSlot
    timeout_s: float
    on_overhead: Callable[[float], None] | None = None
    on_workers: Callable[[int], None] | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)
    workers: list[Worker] = field(default_factory=list)
    stats: PoolStats = field(default_factory=PoolStats)
    closed: bool = False

    def acquire(self, timeout: float) -> Lease | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for w in self.workers:
                    if not w.busy:
                        w.busy = True
                        return _RemoteLease(self, w)
                if not self.workers and self.mode == "auto" and self.local.try_acquire(0):
                    return _LocalLease(self)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    return None
                self.cond.wait(remaining)

    def add(self, worker: Worker) -> bool:
        """Register a connected task; False for a second task of an executor already serving."""
        with self.cond:
            if self.closed or any(w.executor == worker.executor for w in self.workers):
                return False
            self.workers.append(worker)
            self.cond.notify_all()
        self._changed()
        return True

    def finished(self, worker: Worker, served: bool) -> None:
        with self.cond:
            worker.busy = False
            if served:
                worker.batches += 1
            self.cond.notify_all()

    def drop(self, worker: Worker, reason: str) -> None:
        with self.cond:
            if worker in self.workers:
                self.workers.remove(worker)
                self.stats.lost_workers += 1
                self.stats.last_error = reason
            self.cond.notify_all()
        with contextlib.suppress(OSError):
            worker.conn.close()
        log.warning("online executor task %s lost (%s); its batch runs locally", worker.executor, reason)
        self._changed()

    def count(self) -> int:
        with self.cond:
            return len(self.workers)

    def describe(self) -> dict[str, Any]:
        with self.cond:
            active = "spark" if self.workers else ("local" if self.mode == "auto" else WAITING)
            return {"mode": self.mode, "active": active, "workers": [w.describe() for w in self.workers],
                    "lost_workers": self.stats.lost_workers}

    def close(self) -> None:
        with self.cond:
            self.closed = True
            workers, self.workers = list(self.workers), []
            self.cond.notify_all()
        for w in workers:
            with contextlib.suppress(OSError):
                w.conn.send_bytes(STOP)
            with contextlib.suppress(OSError):
                w.conn.close()

    def _changed(self) -> None:
        if self.on_workers is not None:
            self.on_workers(self.count())


class _RemoteLease:
    def __init__(self, pool: WorkerPool, worker: Worker) -> None:
        self.pool = pool
        self.worker = worker
        self.served = False

    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        p = self.pool
        t0 = time.perf_counter()
        try:
            vectors, compute = self.worker.call(batch, p.timeout_s)
        except (OSError, EOFError, ProtocolError, ValueError) as exc:
            # The executor went away, went silent or answered nonsense: this batch runs here instead.
            p.drop(self.worker, f"{type(exc).__name__}: {exc}")
            return p.local.run_locked(batch, "fallback")
        self.served = True
        if p.on_overhead is not None:
            p.on_overhead(max(0.0, time.perf_counter() - t0 - compute))
        return vectors, "spark"

    def release(self) -> None:
        self.pool.finished(self.worker, self.served)


class _LocalLease:
    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        return self.pool.local.run(batch)

    def release(self) -> None:
        self.pool.local.release()
        with self.pool.cond:
            self.pool.cond.notify_all()
