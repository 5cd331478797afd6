"""The micro-batcher over the fake engine (tests/support/fake.py; the real engine's batch
invariance is tests/fidelity's): same vectors, fairness, overload, cancellation."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from sqlembed.benchmark.corpus import paragraphs
from sqlembed.engine.batcher import Batcher
from sqlembed.engine.embedder import Embedder
from sqlembed.errors import Overloaded
from tests.support.fake import FakeBackend, fake_engine


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return fake_engine(tmp_path_factory.mktemp("fake-model"))  # type: ignore[no-any-return]


class Gate:
    """Wraps a backend so a test can hold inference at a known point."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = "gated"
        self.open = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        self.open.wait(30)
        return self.inner.forward(ids, mask)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


def test_concurrent_requests_get_their_own_vectors(embedder: Embedder) -> None:
    texts = paragraphs(120)
    expected = embedder.embed(texts)
    sizes = []
    # A per-batch cost keeps the engine busy while the others arrive: the default batcher has no
    # timer, so busy is what merges them.
    busy = Embedder(FakeBackend(seconds_per_batch=0.002), embedder.tokenizer, embedder.manifest)

    async def main() -> list[np.ndarray]:
        b = Batcher(busy, max_batch_items=16, max_batch_tokens=2048,
                    observer=lambda n, *_: sizes.append(n))
        b.start()
        try:
            groups = [texts[i : i + k] for i, k in zip(range(0, 120, 6), [1, 2, 3] * 20, strict=False)]
            groups = [g for g in groups if g]
            outs = await asyncio.gather(*(b.embed(busy.tokenize(g)) for g in groups))
            return [o for o in outs], groups  # type: ignore[return-value]
        finally:
            b.close()

    outs, groups = asyncio.run(main())  # type: ignore[misc]
    got = {t: v for g, o in zip(groups, outs, strict=True) for t, v in zip(g, o, strict=True)}
    for i, t in enumerate(texts):
        if t in got:
            assert float(np.dot(got[t], expected[i])) >= 0.99999
    assert max(sizes) > 1, "concurrent requests must be merged into batches"


def test_overload_raises_and_keeps_accepted_work(embedder: Embedder) -> None:
    gate = Gate(embedder.backend)
    gated = Embedder(gate, embedder.tokenizer, embedder.manifest)  # type: ignore[arg-type]

    async def main() -> None:
        b = Batcher(gated, max_batch_items=4, max_queue_texts=3, max_wait_ms=0, retry_after_s=2)
        b.start()
        try:
            first = asyncio.ensure_future(b.embed(gated.tokenize(["one", "two"])))
            await asyncio.to_thread(gate.entered.wait, 10)
            second = asyncio.ensure_future(b.embed(gated.tokenize(["three"])))
            await asyncio.sleep(0)
            with pytest.raises(Overloaded) as info:
                await b.embed(gated.tokenize(["four"]))
            assert info.value.retry_after == 2
            gate.open.set()
            a, c = await asyncio.gather(first, second)
            assert a.shape == (2, 384) and c.shape == (1, 384)
            np.testing.assert_allclose(c[0], embedder.embed(["three"])[0], atol=1e-5)
            assert b.queued_texts == 0
        finally:
            gate.open.set()
            b.close()

    asyncio.run(main())


def test_small_request_is_not_starved_by_a_large_one(embedder: Embedder) -> None:
    order: list[int] = []
    # 50 batches of 8 at 5 ms each: the bulk is still running when the single text arrives.
    embedder = Embedder(FakeBackend(seconds_per_batch=0.005), embedder.tokenizer, embedder.manifest)

    async def main() -> None:
        b = Batcher(embedder, max_batch_items=8, max_batch_tokens=100_000, max_wait_ms=0)
        b.start()
        try:
            big = asyncio.ensure_future(b.embed(embedder.tokenize(paragraphs(400))))
            await asyncio.sleep(0.05)
            small = asyncio.ensure_future(b.embed(embedder.tokenize(["just one"])))
            small.add_done_callback(lambda _: order.append(1))
            big.add_done_callback(lambda _: order.append(400))
            await asyncio.gather(big, small)
        finally:
            b.close()

    asyncio.run(main())
    assert order == [1, 400], "round-robin seeding must serve the single text before the bulk finishes"


def test_cancelled_request_is_dropped(embedder: Embedder) -> None:
    gate = Gate(embedder.backend)
    gated = Embedder(gate, embedder.tokenizer, embedder.manifest)  # type: ignore[arg-type]

    async def main() -> None:
        b = Batcher(gated, max_batch_items=2, max_wait_ms=0)
        b.start()
        try:
            first = asyncio.ensure_future(b.embed(gated.tokenize(["a", "b"])))
            await asyncio.to_thread(gate.entered.wait, 10)
            doomed = asyncio.ensure_future(b.embed(gated.tokenize(["c", "d", "e", "f"])))
            await asyncio.sleep(0.01)
            doomed.cancel()
            await asyncio.sleep(0.01)
            gate.open.set()
            await first
            ok = await b.embed(gated.tokenize(["g"]))
            assert ok.shape == (1, 384)
            # first batch, then "g": the four cancelled texts never ran.
            assert gate.calls == 2
            assert b.queued_texts == 0
        finally:
            gate.open.set()
            b.close()

    asyncio.run(main())


class Widths(Gate):
    """The gated backend asking for widths padded to a multiple of 16 (as OpenVINO's does) and
    recording the shapes it is given."""

    length_multiple = 16

    def __init__(self, inner: object) -> None:
        super().__init__(inner)
        self.shapes: list[tuple[int, int]] = []

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.shapes.append(ids.shape)
        return super().forward(ids, mask)


def test_texts_of_one_padded_width_share_a_batch(embedder: Embedder) -> None:
    """Texts of 17-32 tokens all run at width 32, so they cost no padding beside each other: even
    with no padding allowed they form one batch (grouped by raw length they split into eight)."""
    backend = Widths(embedder.backend)
    padded = Embedder(backend, embedder.tokenizer, embedder.manifest)  # type: ignore[arg-type]
    by_length: dict[int, str] = {}
    for text in paragraphs():
        words = text.split()
        for k in range(3, 40):
            n = len(embedder.tokenize([" ".join(words[:k])])[0])
            if 17 <= n <= 32:
                by_length.setdefault(n, " ".join(words[:k]))
        if len(by_length) >= 8:
            break
    texts = list(by_length.values())[:8]
    assert len({len(t) for t in embedder.tokenize(texts)}) == 8, "eight different lengths"
    assert padded.padded_width(17) == 32 and padded.padded_width(250) == embedder.tokenizer.max_length

    async def main() -> list[np.ndarray]:
        b = Batcher(padded, max_batch_items=16, max_wait_ms=0, max_padding_share=0.0)
        b.start()
        try:
            first = asyncio.ensure_future(b.embed(padded.tokenize(["hold the engine"])))
            await asyncio.to_thread(backend.entered.wait, 10)
            rest = [asyncio.ensure_future(b.embed(padded.tokenize([t]))) for t in texts]
            await asyncio.sleep(0.05)
            backend.open.set()
            await first
            return [o[0] for o in await asyncio.gather(*rest)]
        finally:
            backend.open.set()
            b.close()

    got = asyncio.run(main())
    assert backend.shapes[1:] == [(8, 32)]
    expected = embedder.embed(texts)  # unpadded: padding to 32 must not move a vector
    assert min(float(np.dot(g, e)) for g, e in zip(got, expected, strict=True)) >= 0.99999


class TimedWaits(threading.Condition):
    """A Condition that records every wait with a timeout: the batcher's only timed wait is the
    opt-in wait for company."""

    def __init__(self) -> None:
        super().__init__()
        self.timed: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.timed.append(timeout)
        return super().wait(timeout)


@pytest.mark.parametrize(("max_wait_ms", "timed"), [(None, False), (50.0, True)])
def test_a_lone_request_runs_at_once_unless_a_wait_is_configured(embedder: Embedder, max_wait_ms: float | None,
                                                                 timed: bool) -> None:
    """Issue 24: with the default settings a request that finds the engine idle goes straight to
    it (no timer on SQL Server's row-by-row path); SQLEMBED_MAX_WAIT_MS opts back in, and the
    recorder sees that wait, so its silence in the default case means something."""
    from sqlembed.settings import Settings

    wait = Settings().max_wait_ms if max_wait_ms is None else max_wait_ms

    async def main() -> list[float]:
        b = Batcher(embedder, max_wait_ms=wait)
        b._cond = cond = TimedWaits()
        b.start()
        try:
            for text in ("one", "two", "three"):
                got = await b.embed(embedder.tokenize([text]))
                np.testing.assert_allclose(got[0], embedder.embed([text])[0], atol=1e-5)
            return cond.timed
        finally:
            b.close()

    waits = asyncio.run(main())
    assert bool(waits) is timed, waits


def test_arrivals_while_the_engine_is_busy_form_the_next_batch(embedder: Embedder) -> None:
    gate = Gate(embedder.backend)
    gated = Embedder(gate, embedder.tokenizer, embedder.manifest)  # type: ignore[arg-type]
    sizes: list[int] = []

    async def main() -> None:
        b = Batcher(gated, max_batch_items=8, observer=lambda n, *_: sizes.append(n))
        b.start()
        try:
            first = asyncio.ensure_future(b.embed(gated.tokenize(["the engine is busy with me"])))
            await asyncio.to_thread(gate.entered.wait, 10)
            rest = [asyncio.ensure_future(b.embed(gated.tokenize([f"row {i}"]))) for i in range(5)]
            await asyncio.sleep(0.02)  # let every arrival reach the pool (no ordering assumed)
            gate.open.set()
            await asyncio.gather(first, *rest)
        finally:
            gate.open.set()
            b.close()

    asyncio.run(main())
    assert sizes == [1, 5], "a lone request runs alone; the five that queued behind it run as one batch"
