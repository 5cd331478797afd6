"""Where a formed batch runs: the placement hands the batcher a lease on one free slot.

``LocalPlacement`` has one slot, the in-process engine, which is what ``placement=local`` and
every test of the batcher use. ``spark/dispatch.py`` implements the same interface over
long-running executor tasks and falls back to a ``LocalSlot`` when an executor goes away.
Nothing here imports Spark: the batcher only sees slots.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sqlembed.engine.embedder import Embedder
from sqlembed.engine.tokenizer import TokenIds

F32 = npt.NDArray[np.float32]


class Lease(Protocol):
    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        """Vectors for the batch and the placement that produced them (a metrics label)."""
        ...

    def release(self) -> None: ...


WAITING = "waiting for executors"
"""``describe()["active"]`` when placement=spark has no executor: requests would only wait (/readyz
answers 503 then, so a load balancer sends them elsewhere)."""


class Placement(Protocol):
    concurrency: int
    """How many batches may be in flight at once (the batcher runs this many worker threads)."""

    wait_limit_s: float | None
    """How long a text may wait for a slot before it is refused (None: forever)."""

    def acquire(self, timeout: float) -> Lease | None: ...

    def describe(self) -> dict[str, Any]:
        """For /readyz: the mode, where batches run now, and the workers behind it."""
        ...

    def close(self) -> None: ...


class LocalSlot:
    """The in-process engine as a slot; one batch at a time keeps all cores on one batch."""

    def __init__(self, embedder: Embedder, label: str = "local") -> None:
        self.embedder = embedder
        self.label = label
        self.lock = threading.Lock()

    def try_acquire(self, timeout: float) -> bool:
        return self.lock.acquire(timeout=max(timeout, 0.0))

    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        return self.embedder.embed_tokens(batch), self.label

    def run_locked(self, batch: Sequence[TokenIds], label: str) -> tuple[F32, str]:
        """Run while holding the slot; used by placements that fall back to the local engine."""
        with self.lock:
            return self.embedder.embed_tokens(batch), label

    def release(self) -> None:
        self.lock.release()


class LocalPlacement:
    concurrency = 1
    wait_limit_s: float | None = None

    def __init__(self, embedder: Embedder) -> None:
        self.slot = LocalSlot(embedder)

    def acquire(self, timeout: float) -> Lease | None:
        return self.slot if self.slot.try_acquire(timeout) else None

    def describe(self) -> dict[str, Any]:
        return {"mode": "local", "active": "local"}

    def close(self) -> None:
        pass
