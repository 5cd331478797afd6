"""The body of one long-running online task on an executor: load the worker's engine once,
connect back to the driver, then serve batches until told to stop or the driver goes away."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Client
from typing import Any

from sqlembed.engine.config import EngineSettings
from sqlembed.spark.online.codec import decode_batch, encode_error, encode_result, no_delay


@dataclass(frozen=True)
class OnlineTaskConfig:
    host: str
    port: int
    authkey: bytes
    """Shared with the driver through the task closure; the connection proves it with an HMAC
    challenge, so it never crosses the network."""
    wave: int
    engine: EngineSettings


def executor_id() -> str:
    # The Python daemon (or the executor JVM) is this worker's parent: one id per executor.
    return f"{socket.gethostname()}:{os.getppid()}"


def serve_online(index: int, rows: Iterator[Any], cfg: OnlineTaskConfig) -> Iterator[int]:
    from sqlembed.spark.engines import task_engine

    # Drain the input: a Python worker that leaves its input unread is not reused (SPARK-26549),
    # and the next task on this executor would load the model again.
    for _ in rows:
        pass
    emb, gpu = task_engine(cfg.engine)
    conn = Client((cfg.host, cfg.port), family="AF_INET", authkey=cfg.authkey)
    no_delay(conn)
    served = 0
    try:
        hello = {"wave": cfg.wave, "partition": index, "host": socket.gethostname(), "executor": executor_id(),
                 "gpu": gpu, "model_id": emb.manifest.id, "backend": emb.backend.name}
        conn.send_bytes(json.dumps(hello).encode())
        if not conn.poll(30) or not json.loads(conn.recv_bytes()).get("ok"):
            return iter([0])  # a duplicate on an executor that is already serving, or refused
        while True:
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                break  # the driver went away or dropped us: the task ends cleanly
            if frame[:1] != b"B":
                break
            t0 = time.perf_counter()
            try:
                out = encode_result(emb.embed_tokens(decode_batch(frame)), time.perf_counter() - t0)
            except Exception as exc:
                out = encode_error(exc)
            conn.send_bytes(out)
            served += 1
    finally:
        conn.close()
    return iter([served])
