"""spark/online without a Spark job: the codec, the authenticated listener, the executor loop
(``serve_online``, run here in a thread against the real model); a lost or silent executor's batch
is retried on the local engine; auto and spark modes with no executor; the key never crosses
the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path

import numpy as np
import pytest

from sqlembed.engine.batcher import Batcher
from sqlembed.engine.embedder import Embedder
from sqlembed.errors import NotReady, UnprocessableInput
from sqlembed.spark.online.codec import (
    ProtocolError,
    decode_batch,
    decode_result,
    encode_batch,
    encode_error,
    encode_result,
)
from sqlembed.spark.online.executor import OnlineTaskConfig, serve_online
from sqlembed.spark.online.placement import SparkPlacement
from sqlembed.spark.session import SessionHolder
from tests.support.engines import engine_settings, open_engine

MODEL = "all-minilm-l6-v2-fp32"


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Iterator[Embedder]:
    emb = open_engine(model_dir, threads=1)
    yield emb
    emb.close()


def placement(embedder: Embedder, model_dir: Path, mode: str = "spark", **kw: object) -> SparkPlacement:
    # A holder that is never asked for a session: the launcher is not started, so no Spark runs.
    p = SparkPlacement(mode=mode, local=embedder, session=SessionHolder(),
                       engine=engine_settings(model_dir, threads=1), bind_host="127.0.0.1", **kw)  # type: ignore[arg-type]
    p.listen(None)  # what the launcher does once the session exists
    return p


def _address(p: SparkPlacement) -> tuple[str, int]:
    assert p.listener.address is not None
    return p.listener.address


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


def _fake_executor(p: SparkPlacement, name: str) -> Connection:
    """A raw, admitted executor connection that the test then drives (or lets die)."""
    conn = Client(_address(p), family="AF_INET", authkey=p._authkey)
    conn.send_bytes(json.dumps({"model_id": MODEL, "executor": name}).encode())
    assert json.loads(conn.recv_bytes())["ok"] is True
    _wait_workers(p, 1)
    return conn


def test_frames_round_trip() -> None:
    batch = [np.array([101, 7592, 102]), np.array([101, 102]), np.arange(300)]
    back = decode_batch(encode_batch(batch))
    assert [b.tolist() for b in back] == [b.tolist() for b in batch]
    v = np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32)
    got, secs = decode_result(encode_result(v, 0.25), 3)
    np.testing.assert_array_equal(got, v)
    assert secs == 0.25
    with pytest.raises(ProtocolError, match="does not match"):
        decode_result(encode_result(v, 0.1), 2)
    with pytest.raises(ProtocolError, match="executor error: RuntimeError: CUDA out of memory"):
        decode_result(encode_error(RuntimeError("CUDA out of memory")), 1)
    with pytest.raises(ProtocolError, match="executor error: dimensions=9 is larger"):
        decode_result(encode_error(UnprocessableInput("dimensions=9 is larger")), 1)
    with pytest.raises(ProtocolError, match="unreadable"):
        decode_result(b"ECUDA out of memory", 1)
    for bad in (b"", b"B", b"B\x05\x00\x00\x00", encode_batch(batch)[:-4]):
        with pytest.raises(ProtocolError):
            decode_batch(bad)


def test_the_key_challenge_and_the_model_gate_admission(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    try:
        with pytest.raises(AuthenticationError):
            Client(_address(p), family="AF_INET", authkey=b"a guessed key")
        with Client(_address(p), family="AF_INET", authkey=p._authkey) as conn:
            conn.send_bytes(json.dumps({"model_id": "other-model", "executor": "b"}).encode())
            answer = json.loads(conn.recv_bytes())
            assert answer["ok"] is False and "serves model" in answer["reason"]
        assert p.worker_count() == 0
        # A raw socket that never answers the challenge is not a worker either.
        with socket.create_connection(_address(p), timeout=5) as s:
            s.sendall(b"\x00\x00\x00\x05hello")
        assert p.worker_count() == 0
    finally:
        p.close()


class _Relay:
    """A TCP relay in front of the listener that records every byte both ways."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.seen = bytearray()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", self._server.getsockname()[1])
        self._target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while chunk := a.recv(65536):
                self.seen += chunk
                b.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def _executor(p: SparkPlacement, model_dir: Path, address: tuple[str, int] | None = None) -> threading.Thread:
    host, port = address or _address(p)
    cfg = OnlineTaskConfig(host, port, p._authkey, 1, engine_settings(model_dir, threads=1))
    t = threading.Thread(target=lambda: list(serve_online(0, iter(()), cfg)), daemon=True)
    t.start()
    return t


def test_executor_loop_serves_batches_with_local_vectors(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    relay = _Relay(_address(p))
    try:
        t = _executor(p, model_dir, relay.address)
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
        assert len(relay.seen) > 2000, "the batch and its vectors went through the relay"
        assert p._authkey not in bytes(relay.seen), "the shared key never crosses the network"
        assert p._authkey.hex().encode() not in bytes(relay.seen)
    finally:
        p.close()
        relay.close()
    t.join(30)
    assert not t.is_alive(), "stop ends the executor task"


def _nodelay(conn: Connection) -> int:
    sock = socket.socket(fileno=conn.fileno())
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.detach()


def test_both_ends_send_frames_without_nagle(embedder: Embedder, model_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A result frame over 16 KiB leaves multiprocessing.connection as two writes; with Nagle on,
    # the second waits for the driver's delayed ACK (~40 ms a batch; placement=spark measured
    # 0.79x of local instead of 1.03x). TCP_NODELAY is a sender's option: check each end's socket.
    import sqlembed.spark.online.executor as executor

    opened: list[Connection] = []

    def client(*args: object, **kw: object) -> Connection:
        conn = Client(*args, **kw)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    monkeypatch.setattr(executor, "Client", client)
    p = placement(embedder, model_dir)
    try:
        t = _executor(p, model_dir)
        _wait_workers(p, 1)
        assert _nodelay(p.pool.workers[0].conn) == 1, "driver end"
        assert _nodelay(opened[0]) == 1, "executor end"
    finally:
        p.close()
    t.join(30)


def test_lost_executor_batch_runs_locally(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir)
    try:
        # An executor that takes one batch and dies (its connection closes without an answer).
        conn = _fake_executor(p, "doomed:1")

        def die() -> None:
            conn.recv_bytes()
            conn.close()

        threading.Thread(target=die, daemon=True).start()
        batch = embedder.tokenize(["the executor dies while this batch is out"])
        vectors, label = _run_one(p, batch)
        assert label == "fallback"
        np.testing.assert_allclose(vectors, embedder.embed_tokens(batch), atol=1e-6)
        assert p.worker_count() == 0 and p.pool.stats.lost_workers == 1
    finally:
        p.close()


def test_silent_executor_times_out_to_local(embedder: Embedder, model_dir: Path) -> None:
    p = placement(embedder, model_dir, timeout_s=0.5)
    try:
        conn = _fake_executor(p, "stuck:1")
        _, label = _run_one(p, embedder.tokenize(["nobody answers"]))
        assert label == "fallback" and p.worker_count() == 0
        conn.close()
    finally:
        p.close()


def test_batch_counters_under_concurrency(embedder: Embedder, model_dir: Path) -> None:
    """Eight threads share one executor: every batch is counted once (the counter is under the lock)."""
    p = placement(embedder, model_dir)
    try:
        t = _executor(p, model_dir)
        _wait_workers(p, 1)
        batch = embedder.tokenize(["counted"])

        def worker() -> None:
            for _ in range(10):
                lease = None
                while lease is None:
                    lease = p.acquire(1)
                try:
                    lease.run(batch)
                finally:
                    lease.release()

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert p.describe()["workers"][0]["batches"] == 80
    finally:
        p.close()
    t.join(30)


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
