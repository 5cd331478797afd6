"""Async micro-batcher: merges concurrent requests into length-grouped batches.

Why this shape: SQL Server's AI_GENERATE_EMBEDDINGS sends one text per HTTP request, sometimes
many at once, often one after another. Inference runs on one worker thread, one batch at a time,
while the event loop keeps accepting requests into a bounded pool. No timer: when the engine is
idle a request runs at once (a lone request's latency is the row-by-row path's speed), and while
it is busy arrivals queue and form the next batch, as text-embeddings-inference does; under load
batches fill by themselves (docs/benchmarks.md, "Row by row"). Each batch is seeded from the
requests in round-robin order (so a 2,000-text request cannot starve a single-text one) and
filled with pending texts of similar length (so padding stays small). Taking a batch at a time,
instead of everything pending, keeps the engine busy while answered clients send their next
request.

Where a batch runs is the placement's business (engine/placement.py): a worker thread first
leases a free slot, then forms the batch, so batches are formed as late as possible (and so as
full as possible) and there are never more batches in flight than slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sqlembed.engine.embedder import Embedder
from sqlembed.engine.placement import Lease, LocalPlacement, Placement
from sqlembed.engine.tokenizer import TokenIds
from sqlembed.errors import NotReady, Overloaded

F32 = npt.NDArray[np.float32]
BatchObserver = Callable[[int, int, int, float, str], None]
"""Called after each batch with (texts, real tokens, padded tokens, seconds, placement label)."""


class _Request:
    __slots__ = ("cancelled", "error", "future", "loop", "out", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, dim: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[F32] = loop.create_future()
        self.out = np.empty((n, dim), dtype=np.float32)
        self.remaining = n
        self.cancelled = False
        self.error: BaseException | None = None


@dataclass(slots=True)
class _Item:
    ids: TokenIds
    length: int
    width: int
    """What the item pads to alone (``Embedder.padded_width``): items of one width group for free."""
    req: _Request
    pos: int
    seq: int
    enqueued: float


def _resolve(req: _Request) -> None:
    if req.future.done():
        return
    if req.error is not None:
        req.future.set_exception(req.error)
    else:
        req.future.set_result(req.out)


class Batcher:
    def __init__(
        self,
        embedder: Embedder,
        *,
        max_batch_items: int = 32,
        max_batch_tokens: int = 4096,
        max_queue_texts: int = 8192,
        max_wait_ms: float = 0.0,
        max_padding_share: float = 0.15,
        retry_after_s: int = 1,
        observer: BatchObserver | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.embedder = embedder
        self.placement: Placement = placement or LocalPlacement(embedder)
        self.max_batch_items = max_batch_items
        self.max_batch_tokens = max_batch_tokens
        self.max_queue_texts = max_queue_texts
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_padding_share = max_padding_share
        self.retry_after_s = retry_after_s
        self.observer = observer
        self._cond = threading.Condition()
        self._pending: list[_Item] = []
        self._rr: deque[_Request] = deque()
        self._queued = 0
        self._seq = itertools.count()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.last_request = 0.0
        """Wall-clock time of the latest online request (the scale signal's demand)."""
        self.served: Counter[str] = Counter()
        """Batches by the placement that ran them."""

    @property
    def queued_texts(self) -> int:
        """Texts accepted and not yet answered (pending plus the batch in flight)."""
        return self._queued

    def start(self) -> None:
        for i in range(max(1, self.placement.concurrency)):
            t = threading.Thread(target=self._run, name=f"sqlembed-batcher-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=30)

    async def embed(self, encoded: Sequence[TokenIds]) -> F32:
        n = len(encoded)
        if n == 0:
            return np.empty((0, self.embedder.dimensions), dtype=np.float32)
        req = _Request(asyncio.get_running_loop(), n, self.embedder.dimensions)
        now = time.monotonic()
        self.last_request = time.time()
        with self._cond:
            if self._closed:
                raise NotReady("the service is shutting down")
            if self._queued + n > self.max_queue_texts:
                raise Overloaded(
                    f"server busy: {self._queued} texts queued (limit {self.max_queue_texts}); retry later",
                    retry_after=self.retry_after_s,
                )
            self._queued += n
            width = self.embedder.padded_width
            self._pending.extend(
                _Item(ids, len(ids), width(len(ids)), req, pos, next(self._seq), now)
                for pos, ids in enumerate(encoded)
            )
            self._rr.append(req)
            self._cond.notify()
        try:
            return await asyncio.shield(req.future)
        except asyncio.CancelledError:
            # The client went away: drop its texts that have not run yet.
            req.cancelled = True
            raise

    # --- worker thread -------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        """Pick the next batch; caller holds the lock and ``_pending`` is not empty."""
        if any(it.req.cancelled for it in self._pending):
            dropped = [it for it in self._pending if it.req.cancelled]
            self._pending = [it for it in self._pending if not it.req.cancelled]
            self._queued -= len(dropped)
            if not self._pending:
                return []
        seed_req = None
        while self._rr:
            r = self._rr[0]
            if r.cancelled or r.future.done() or not any(it.req is r for it in self._pending):
                self._rr.popleft()
                continue
            seed_req = r
            break
        self._pending.sort(key=lambda it: (it.width, it.seq))
        pos = 0
        if seed_req is not None:
            self._rr.rotate(-1)
            pos = min((i for i, it in enumerate(self._pending) if it.req is seed_req),
                      key=lambda i: self._pending[i].seq)
        lo, hi = pos, pos + 1
        width = self._pending[pos].width
        real = width
        pending = self._pending
        # Grow the window over neighbours in width order (the closer one first) while it fits
        # the item and token budgets and padding stays a small share of the work: requests
        # arrive in random length order, and padding, not batch size, decides CPU throughput
        # (docs/benchmarks.md). Widths, not lengths: texts that pad to one width anyway cost no
        # padding beside each other, so they fill a batch instead of splitting it.
        while hi - lo < self.max_batch_items:
            left = pending[lo - 1].width if lo > 0 else None
            right = pending[hi].width if hi < len(pending) else None
            if left is None and right is None:
                break
            take_right = right is not None and (left is None or right - width <= width - left)
            length = right if take_right else left
            assert length is not None
            new_width = max(width, length)
            n = hi - lo + 1
            padded = n * new_width
            if padded > self.max_batch_tokens or padded - (real + length) > self.max_padding_share * padded:
                break
            if take_right:
                hi += 1
            else:
                lo -= 1
            width, real = new_width, real + length
        batch = self._pending[lo:hi]
        del self._pending[lo:hi]
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
            lease = self.placement.acquire(timeout=0.2)
            if lease is None:
                self._expire()
                continue
            with self._cond:
                if not self._pending:
                    lease.release()
                    continue
                if self.max_wait_s > 0 and len(self._pending) < self.max_batch_items:
                    # Opt-in only (SQLEMBED_MAX_WAIT_MS): a fixed wait for company delays every
                    # lone request by it and, measured, buys no throughput under load.
                    deadline = min(it.enqueued for it in self._pending) + self.max_wait_s
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        self._cond.wait(remaining)
                batch = self._take() if self._pending else []
            try:
                if batch:
                    self._execute(batch, lease)
            finally:
                lease.release()

    def _expire(self) -> None:
        """Refuse texts that waited longer than the placement allows for a slot (no worker up)."""
        limit = self.placement.wait_limit_s
        if limit is None:
            return
        cutoff = time.monotonic() - limit
        with self._cond:
            stale = {it.req for it in self._pending if it.enqueued < cutoff}
            if not stale:
                return
            keep = [it for it in self._pending if it.req not in stale]
            self._queued -= len(self._pending) - len(keep)
            self._pending = keep
        error = NotReady(f"no embedding worker became available within {limit:g} s; retry later")
        for req in stale:
            req.error = error
            with contextlib.suppress(RuntimeError):
                req.loop.call_soon_threadsafe(_resolve, req)

    def _execute(self, batch: list[_Item], lease: Lease) -> None:
        t0 = time.perf_counter()
        error: BaseException | None = None
        vectors: F32 | None = None
        label = "local"
        try:
            vectors, label = lease.run([it.ids for it in batch])
        except Exception as e:  # delivered to every request in the batch
            error = e
        elapsed = time.perf_counter() - t0
        done: set[_Request] = set()
        # Under the lock: with several slots, two batches of one request can finish at once.
        with self._cond:
            for row, it in enumerate(batch):
                req = it.req
                if error is not None:
                    req.error = error
                elif vectors is not None:
                    req.out[it.pos] = vectors[row]
                req.remaining -= 1
                if req.remaining == 0 or error is not None:
                    done.add(req)
            self._queued -= len(batch)
            if error is None:
                self.served[label] += 1
            if error is not None:
                # A failed request must not keep its other texts in the pool.
                keep = [it for it in self._pending if it.req not in done]
                self._queued -= len(self._pending) - len(keep)
                self._pending = keep
        for req in done:
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                req.loop.call_soon_threadsafe(_resolve, req)
        if self.observer is not None:
            tokens = sum(it.length for it in batch)
            padded = len(batch) * max(it.width for it in batch)
            self.observer(len(batch), tokens, padded, elapsed, label)
