"""spark/dispatch.py without a Spark job: the frames, the handshake, and the executor loop
(``serve_online``, run here in a thread against the real model) behind a real socket; a lost
executor's batch is retried on the local engine; auto and spark modes with no executor."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sqlembed.engine.batcher import Batcher
from sqlembed.engine.embedder import Embedder, load_embedder
from sqlembed.engine.store import ModelStore
from sqlembed.errors import NotReady
from sqlembed.spark.dispatch import (
    OnlineTaskConfig,
    ProtocolError,
    SparkPlacement,
    decode_batch,
    decode_result,
    encode_batch,
    encode_result,
    recv_frame,
    send_frame,
    serve_online,
)
from sqlembed.spark.session import SessionHolder

MODEL = "all-minilm-l6-v2-fp32"


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Iterator[Embedder]:
    store = ModelStore(model_dir)
    emb = load_embedder(store.path(MODEL), store.get(MODEL), threads=1)
    yield emb
    emb.close()


def placement(embedder: Embedder, model_dir: Path, mode: str = "spark", **kw: object) -> SparkPlacement:
    # A holder that is never asked for a session: the launcher is not started, so no Spark runs.
    p = SparkPlacement(mode=mode, local=embedder, session=SessionHolder(), model_dir=str(model_dir), model_id=MODEL,
                       bind_host="127.0.0.1", **kw)  # type: ignore[arg-type]
    p._listen(None)  # what the launcher does once the session exists
    return p


def _wait_workers(p: SparkPlacement, n: int) -> None:
    deadline = time.monotonic() + 30
    while p.worker_count() != n:
        assert time.monotonic() < deadline, p.describe()
        time.sleep(0.02)


def _run_one(p: SparkPlacement, batch: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """What a batcher thread does with one batch: lease a slot, run, give the slot back."""
    lease = p.acquire(1)
    assert lease is not None
    try:
        return lease.run(batch)
    finally:
        lease.release()


def _fake_executor(p: SparkPlacement, name: str) -> socket.socket:
    """A raw, admitted executor connection that the test then drives (or lets die)."""
    assert p._address is not None
    s = socket.create_connection(p._address, timeout=5)
    send_frame(s, json.dumps({"token": p._token, "model_id": MODEL, "executor": name}).encode())
    assert json.loads(recv_frame(s))["ok"] is True
    _wait_workers(p, 1)
    return s


def test_frames_round_trip() -> None:
    batch = [np.array([101, 7592, 102]), np.array([101, 102]), np.arange(300)]
    back = decode_batch(encode_batch(batch)[0:])
    assert [b.tolist() for b in back] == [b.tolist() for b in batch]
    v = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    got, secs = decode_result(encode_result(v, 0.25), 3)
    np.testing.assert_array_equal(got, v)
    assert secs == 0.25
    with pytest.raises(ProtocolError, match="does not match"):
        decode_result(encode_result(v, 0.1), 2)
    with pytest.raises(ProtocolError, match="executor error: CUDA out of memory"):
        decode_result(b"ECUDA out of memory", 1)


def test_handshake_needs_the_token_and_the_same_model(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    try:
        assert p._address is not None
        for hello, reason in [({"token": "guess", "model_id": MODEL, "executor": "a"}, None),
                              ({"token": p._token, "model_id": "other-model", "executor": "b"}, "serves model")]:
            with socket.create_connection(p._address, timeout=5) as s:
                send_frame(s, json.dumps(hello).encode())
                if reason is None:
                    with pytest.raises(ConnectionError):
                        recv_frame(s)  # refused without an answer
                else:
                    answer = json.loads(recv_frame(s))
                    assert answer["ok"] is False and reason in answer["reason"]
        assert p.worker_count() == 0
    finally:
        p.close()


def _executor(p: SparkPlacement, model_dir: Path) -> threading.Thread:
    assert p._address is not None
    cfg = OnlineTaskConfig(p._address[0], p._address[1], p._token, 1, str(model_dir), MODEL, 1, "onnx-cpu", False)
    t = threading.Thread(target=lambda: list(serve_online(0, iter(()), cfg)), daemon=True)
    t.start()
    return t


def test_executor_loop_serves_batches_with_local_vectors(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    try:
        t = _executor(p, model_dir)
        _wait_workers(p, 1)
        # A second task from the same executor (same host and parent pid) is told to go away.
        t2 = _executor(p, model_dir)
        t2.join(30)
        assert not t2.is_alive() and p.worker_count() == 1
        batch = embedder.tokenize(["first text", "a second, longer text about vector search", "3"])
        vectors, label = _run_one(p, batch)
        assert label == "spark"
        np.testing.assert_allclose(vectors, embedder.embed_tokens(batch), atol=1e-6)
        assert p.describe()["workers"][0]["batches"] == 1
    finally:
        p.close()
    t.join(30)
    assert not t.is_alive(), "stop ends the executor task"


def test_lost_executor_batch_runs_locally(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    try:
        # An executor that takes one batch and dies (its socket closes without an answer).
        s = _fake_executor(p, "doomed:1")

        def die() -> None:
            recv_frame(s)
            s.close()

        threading.Thread(target=die, daemon=True).start()
        batch = embedder.tokenize(["the executor dies while this batch is out"])
        vectors, label = _run_one(p, batch)
        assert label == "fallback"
        np.testing.assert_allclose(vectors, embedder.embed_tokens(batch), atol=1e-6)
        assert p.worker_count() == 0 and p.stats.lost_workers == 1
    finally:
        p.close()


def test_silent_executor_times_out_to_local(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir, timeout_s=0.5)
    try:
        s = _fake_executor(p, "stuck:1")
        _, label = _run_one(p, embedder.tokenize(["nobody answers"]))
        assert label == "fallback" and p.worker_count() == 0
        s.close()
    finally:
        p.close()


def test_auto_uses_local_and_spark_waits(embedder: Embedder, model_dir: Path) -> None:
    auto = placement(embedder, model_dir, mode="auto")
    spark = placement(embedder, model_dir, mode="spark", wait_limit_s=0.3)
    try:
        _, label = _run_one(auto, embedder.tokenize(["no executor: served here"]))
        assert label == "local" and auto.describe()["active"] == "local"
        assert spark.acquire(0.1) is None and spark.describe()["active"] == "waiting for executors"

        async def ask() -> None:
            b = Batcher(embedder, placement=spark, max_wait_ms=0)
            b.start()
            try:
                with pytest.raises(NotReady, match="no embedding worker"):
                    await b.embed(embedder.tokenize(["waits for an executor that never comes"]))
                assert b.queued_texts == 0
            finally:
                b.close()

        asyncio.run(ask())
    finally:
        auto.close()
        spark.close()
