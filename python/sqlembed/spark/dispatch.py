"""Online batches on Spark executors: long-running executor tasks that take batches over a socket.

Why not a Spark job per batch: a warm job costs 100-200 ms of scheduling, while a 32-text batch
computes in a few ms on a GPU. Instead the driver launches one long-running task per executor
(a "wave" job in its own job group and fair-scheduler pool); each task loads the cached engine,
connects back to the driver, and then serves batches (token ids in, float32 vectors out) until
the driver says stop or goes away. Spark still owns placement, GPUs and task retries; the socket
only carries the data. When an executor is lost, the batch it held is retried on the local engine
and the launcher starts a new wave as soon as the executor count says one is missing.

Frames are a 4-byte big-endian length and a payload whose first byte is its kind:
``B`` batch (u32 n, int32 lengths[n], int32 ids), ``R`` result (f64 compute seconds, u32 n,
u32 dim, float32 rows), ``E`` executor error (utf-8), ``S`` stop. The hello and its answer are
JSON. The executor proves itself with a per-process random token shipped in the task closure.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.embedder import Embedder
from sqlembed.engine.placement import Lease, LocalSlot
from sqlembed.engine.tokenizer import TokenIds

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
MAX_FRAME = 512 * 1024 * 1024
ONLINE_POOL = "sqlembed-online"
_LEN = struct.Struct(">I")
_RESULT = struct.Struct(">dII")


class ProtocolError(Exception):
    pass


# --- frames (both sides) -----------------------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k
    return bytes(buf)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LEN.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket) -> bytes:
    (n,) = _LEN.unpack(_recv_exact(sock, 4))
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} bytes is over the {MAX_FRAME} byte limit")
    return _recv_exact(sock, n)


def encode_batch(batch: Sequence[TokenIds]) -> bytes:
    lengths = np.fromiter((len(t) for t in batch), dtype=">i4", count=len(batch))
    ids = np.concatenate(batch).astype(">i4") if batch else np.empty(0, dtype=">i4")
    return b"B" + _LEN.pack(len(batch)) + lengths.tobytes() + ids.tobytes()


def decode_batch(frame: bytes) -> list[TokenIds]:
    if frame[:1] != b"B":
        raise ProtocolError("not a batch frame")
    (n,) = _LEN.unpack_from(frame, 1)
    lengths = np.frombuffer(frame, dtype=">i4", count=n, offset=5).astype(np.int64)
    ids = np.frombuffer(frame, dtype=">i4", offset=5 + 4 * n).astype(np.int64)
    if int(lengths.sum()) != len(ids):
        raise ProtocolError("batch frame lengths do not add up")
    return list(np.split(ids, np.cumsum(lengths)[:-1])) if n else []


def encode_result(vectors: F32, seconds: float) -> bytes:
    n, dim = vectors.shape
    return b"R" + _RESULT.pack(seconds, n, dim) + np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def decode_result(frame: bytes, expected_rows: int) -> tuple[F32, float]:
    kind = frame[:1]
    if kind == b"E":
        raise ProtocolError("executor error: " + frame[1:].decode("utf-8", "replace"))
    if kind != b"R":
        raise ProtocolError(f"unexpected frame kind {kind!r}")
    seconds, n, dim = _RESULT.unpack_from(frame, 1)
    if n != expected_rows or len(frame) != 1 + _RESULT.size + 4 * n * dim:
        raise ProtocolError("result frame does not match the batch")
    vectors = np.frombuffer(frame, dtype="<f4", offset=1 + _RESULT.size).reshape(n, dim).astype(np.float32)
    return vectors, seconds


# --- executor side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineTaskConfig:
    host: str
    port: int
    token: str
    wave: int
    model_dir: str
    model_id: str
    threads: int
    backend: str
    require_gpu: bool


def serve_online(index: int, rows: Iterator[Any], cfg: OnlineTaskConfig) -> Iterator[int]:
    """Body of one long-running online task: load the cached engine, connect, serve batches."""
    from sqlembed.spark.partition import engine, task_gpu

    # Drain the input: a Python worker that leaves its input unread is not reused (SPARK-26549),
    # and the next task on this executor would load the model again.
    for _ in rows:
        pass
    gpu = task_gpu()
    if gpu is not None:
        os.environ["SQLEMBED_CUDA_DEVICE"] = gpu
    emb = engine(cfg.model_dir, cfg.model_id, cfg.threads or (os.cpu_count() or 1), cfg.backend, gpu)
    sock = socket.create_connection((cfg.host, cfg.port), timeout=30)
    served = 0
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = {
            "token": cfg.token, "wave": cfg.wave, "partition": index, "host": socket.gethostname(),
            # The Python daemon (or the executor JVM) is this worker's parent: one per executor.
            "executor": f"{socket.gethostname()}:{os.getppid()}", "gpu": gpu,
            "model_id": emb.manifest.id, "backend": emb.backend.name,
        }
        send_frame(sock, json.dumps(hello).encode())
        answer = json.loads(recv_frame(sock))
        if not answer.get("ok"):
            return iter([0])  # a duplicate on an executor that is already serving, or refused
        sock.settimeout(None)
        while True:
            try:
                frame = recv_frame(sock)
            except (ConnectionError, OSError):
                break  # the driver went away or dropped us: the task ends cleanly
            if frame[:1] != b"B":
                break
            t0 = time.perf_counter()
            try:
                vectors = emb.embed_tokens(decode_batch(frame))
                out = encode_result(vectors, time.perf_counter() - t0)
            except Exception as exc:
                out = b"E" + f"{type(exc).__name__}: {exc}".encode()[:4000]
            send_frame(sock, out)
            served += 1
    finally:
        sock.close()
    return iter([served])


# --- driver side -------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    sock: socket.socket
    executor: str
    gpu: str | None
    backend: str
    busy: bool = False
    batches: int = 0

    def describe(self) -> dict[str, Any]:
        return {"executor": self.executor, "gpu": self.gpu, "backend": self.backend, "batches": self.batches,
                "busy": self.busy}

    def call(self, batch: Sequence[TokenIds], timeout: float) -> tuple[F32, float]:
        self.sock.settimeout(timeout)
        send_frame(self.sock, encode_batch(batch))
        return decode_result(recv_frame(self.sock), len(batch))


@dataclass
class _Wave:
    id: int
    tasks: int
    settled: int = 0
    finished: bool = False
    group: str = ""

    @property
    def launching(self) -> bool:
        return not self.finished and self.settled < self.tasks


@dataclass
class DispatchStats:
    lost_workers: int = 0
    last_error: str | None = None


class _RemoteLease:
    def __init__(self, placement: SparkPlacement, worker: _Worker) -> None:
        self.placement = placement
        self.worker = worker

    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        p = self.placement
        t0 = time.perf_counter()
        try:
            vectors, compute = self.worker.call(batch, p.timeout_s)
        except (OSError, ProtocolError, ValueError) as exc:
            # The executor went away (or answered nonsense): this batch runs here instead.
            p.drop(self.worker, f"{type(exc).__name__}: {exc}")
            return p.local.run_locked(batch, "fallback")
        self.worker.batches += 1
        if p.on_overhead is not None:
            p.on_overhead(max(0.0, time.perf_counter() - t0 - compute))
        return vectors, "spark"

    def release(self) -> None:
        self.placement.release(self.worker)


class _LocalLease:
    def __init__(self, placement: SparkPlacement) -> None:
        self.placement = placement

    def run(self, batch: Sequence[TokenIds]) -> tuple[F32, str]:
        return self.placement.local.run(batch)

    def release(self) -> None:
        self.placement.local.release()
        with self.placement.cond:
            self.placement.cond.notify_all()


class SparkPlacement:
    """``placement=spark|auto``: batches go to connected executor tasks; the local engine covers gaps.

    ``auto`` serves on the local engine while no executor task is connected; ``spark`` waits for
    one (up to ``wait_limit_s``, then 503). In both, a batch whose executor is lost mid-flight
    is retried locally, so a worker going away never fails a request.
    """

    def __init__(
        self,
        *,
        mode: str,
        local: Embedder,
        session: Any,
        model_dir: str,
        model_id: str,
        backend: str = "auto",
        executor_threads: int = 0,
        require_gpu: bool = False,
        online_gpu_amount: float = 0.5,
        bind_host: str | None = None,
        bind_port: int = 0,
        timeout_s: float = 10.0,
        wait_limit_s: float = 20.0,
        concurrency: int = 16,
        poll_s: float = 1.0,
        on_overhead: Callable[[float], None] | None = None,
        on_workers: Callable[[int], None] | None = None,
    ) -> None:
        if mode not in ("spark", "auto"):
            raise ValueError(f"SparkPlacement mode must be spark or auto, not {mode!r}")
        self.mode = mode
        self.local = LocalSlot(local)
        self._session = session  # spark.session.SessionHolder: get() builds, peek() does not
        self.model_dir, self.model_id, self.backend = model_dir, model_id, backend
        self.executor_threads = executor_threads
        self.require_gpu = require_gpu
        self.online_gpu_amount = online_gpu_amount
        self.bind_host, self.bind_port = bind_host, bind_port
        self.timeout_s = timeout_s
        self.wait_limit_s: float | None = wait_limit_s if mode == "spark" else None
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.on_overhead = on_overhead
        self.on_workers = on_workers
        self.cond = threading.Condition()
        self.workers: list[_Worker] = []
        self.stats = DispatchStats()
        self._token = secrets.token_hex(32)
        self._waves: list[_Wave] = []
        self._wave_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures = 0

    # --- the batcher's side

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
                if remaining <= 0 or self._stop.is_set():
                    return None
                self.cond.wait(remaining)

    def release(self, worker: _Worker) -> None:
        with self.cond:
            worker.busy = False
            self.cond.notify_all()

    def drop(self, worker: _Worker, reason: str) -> None:
        with self.cond:
            if worker in self.workers:
                self.workers.remove(worker)
                self.stats.lost_workers += 1
                self.stats.last_error = reason
            self.cond.notify_all()
        with contextlib.suppress(OSError):
            worker.sock.close()
        log.warning("online executor task %s lost (%s); its batch runs locally", worker.executor, reason)
        self._workers_changed()

    def describe(self) -> dict[str, Any]:
        with self.cond:
            return {"mode": self.mode, "active": "spark" if self.workers else
                    ("local" if self.mode == "auto" else "waiting for executors"),
                    "workers": [w.describe() for w in self.workers], "lost_workers": self.stats.lost_workers,
                    "address": None if self._address is None else f"{self._address[0]}:{self._address[1]}"}

    def worker_count(self) -> int:
        with self.cond:
            return len(self.workers)

    # --- lifecycle

    def start(self) -> None:
        for target, name in ((self._launcher, "sqlembed-dispatch-launcher"),):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        with self.cond:
            workers, self.workers = list(self.workers), []
            self.cond.notify_all()
        for w in workers:
            with contextlib.suppress(OSError):
                w.sock.settimeout(1.0)
                send_frame(w.sock, b"S")
            with contextlib.suppress(OSError):
                w.sock.close()
        if self._listener is not None:
            # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        for t in self._threads:
            t.join(timeout=10)
        spark = self._session.peek()
        if spark is not None:
            for wave in self._waves:
                if wave.finished:
                    continue
                with contextlib.suppress(Exception):
                    spark.sparkContext.cancelJobGroup(wave.group)

    # --- listener: executor tasks connect here

    def _listen(self, spark: Any) -> None:
        if self.bind_host:
            # A name the executors use (a container app's internal name, say) need not be an
            # address of this machine: listen everywhere and tell executors the name.
            host, bind = self.bind_host, ("127.0.0.1" if self.bind_host in ("127.0.0.1", "localhost") else "")
        else:
            host = spark.sparkContext.getConf().get("spark.driver.host") or "127.0.0.1"
            bind = host
        listener = socket.create_server((bind, self.bind_port), backlog=64)
        self._listener = listener
        self._address = (host, listener.getsockname()[1])
        t = threading.Thread(target=self._accept_loop, name="sqlembed-dispatch-accept", daemon=True)
        t.start()
        self._threads.append(t)
        log.info("online dispatch listening on %s:%d", *self._address)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), name="sqlembed-dispatch-hello",
                             daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello = json.loads(recv_frame(sock))
            if not isinstance(hello, dict) or not hmac.compare_digest(str(hello.get("token", "")), self._token):
                log.warning("refused an online connection without the session token")
                sock.close()
                return
            wave = next((w for w in self._waves if w.id == hello.get("wave")), None)
            reason = self._admit(hello)
            if wave is not None:
                wave.settled += 1
            if reason is not None:
                send_frame(sock, json.dumps({"ok": False, "reason": reason}).encode())
                sock.close()
                log.warning("refused online executor task %s: %s", hello.get("executor"), reason)
                return
            worker = _Worker(sock, str(hello["executor"]), hello.get("gpu"), str(hello.get("backend")))
            with self.cond:
                if self._stop.is_set() or any(w.executor == worker.executor for w in self.workers):
                    send_frame(sock, json.dumps({"ok": False, "reason": "duplicate"}).encode())
                    sock.close()
                    return
                send_frame(sock, json.dumps({"ok": True}).encode())
                self.workers.append(worker)
                self.cond.notify_all()
            log.info("online executor task %s connected (gpu %s, %s)", worker.executor, worker.gpu, worker.backend)
            self._workers_changed()
        except (OSError, ProtocolError, ValueError) as exc:
            log.warning("online handshake failed: %s", exc)
            with contextlib.suppress(OSError):
                sock.close()

    def _admit(self, hello: dict[str, Any]) -> str | None:
        """Why a task cannot serve (None if it can); duplicates are decided where workers register."""
        if hello.get("model_id") != self.model_id:
            return f"executor serves model {hello.get('model_id')!r}, the service serves {self.model_id!r}"
        if self.require_gpu and not hello.get("gpu"):
            return "no GPU assigned to the task (SQLEMBED_SPARK_GPU=true)"
        return None

    def _workers_changed(self) -> None:
        if self.on_workers is not None:
            self.on_workers(self.worker_count())

    # --- launcher: keep one online task per executor

    def executors(self, spark: Any) -> int:
        sc = spark.sparkContext
        if sc.master.startswith("local"):
            return 1
        return max(0, int(sc._jsc.sc().getExecutorMemoryStatus().size()) - 1)

    def _launcher(self) -> None:
        spark = None
        while not self._stop.is_set():
            try:
                if spark is None:
                    spark = self._session.get()
                    self._listen(spark)
                want = self.executors(spark)
                with self.cond:
                    have = len(self.workers)
                launching = any(w.launching for w in self._waves)
                if want > have and not launching:
                    self._launch(spark, want)
                self._failures = 0
            except Exception as exc:
                self._failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("online dispatch launcher: %s", self.stats.last_error)
            # Back off on repeated failures (an executor that cannot load the model, say).
            self._stop.wait(min(self.poll_s * (2 ** min(self._failures, 6)), 60.0))

    def _launch(self, spark: Any, tasks: int) -> None:
        assert self._address is not None
        wave = _Wave(next(self._wave_ids), tasks)
        wave.group = f"sqlembed-online-{wave.id}"
        self._waves = [w for w in self._waves if not w.finished] + [wave]
        cfg = OnlineTaskConfig(self._address[0], self._address[1], self._token, wave.id, self.model_dir,
                               self.model_id, self.executor_threads, self.backend, self.require_gpu)
        t = threading.Thread(target=self._run_wave, args=(spark, wave, cfg), name=f"sqlembed-wave-{wave.id}",
                             daemon=True)
        t.start()

    def _run_wave(self, spark: Any, wave: _Wave, cfg: OnlineTaskConfig) -> None:
        sc = spark.sparkContext
        try:
            sc.setJobGroup(wave.group, "sqlembed online batches", interruptOnCancel=True)
            sc.setLocalProperty("spark.scheduler.pool", ONLINE_POOL)
            rdd = sc.parallelize(range(wave.tasks), wave.tasks)
            if self.require_gpu and not sc.master.startswith("local"):
                rdd = rdd.withResources(self._online_profile())
            served = rdd.mapPartitionsWithIndex(lambda i, rows: serve_online(i, rows, cfg)).collect()
            log.info("online wave %d ended (%d batches served)", wave.id, sum(served))
        except Exception as exc:
            if not self._stop.is_set():
                text = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
                self.stats.last_error = text
                self._failures += 1
                log.warning("online wave %d failed: %s", wave.id, text)
        finally:
            wave.finished = True

    def _online_profile(self) -> Any:
        # Stage-level task resources (standalone, no dynamic allocation, Spark >= 3.4): the online
        # task takes a share of the GPU so a bulk task still fits beside it on the same executor.
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        req = TaskResourceRequests().cpus(1).resource("gpu", self.online_gpu_amount)
        return ResourceProfileBuilder().require(req).build
