"""A front process: HTTP, TLS, JSON, auth and tokenization on its own core; the vectors come
from the engine host over a Unix socket (fronts/wire.py), and what holds state (jobs, the scale
signal, readiness of the placement, the aggregated metrics) is answered by the host's own app,
reached over a second Unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.tokenizer import TokenIds
from sqlembed.errors import NotReady, SqlembedError
from sqlembed.fronts import wire

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]

PROXIED = frozenset({"/v1/jobs", "/v1/jobs/{job_id}", "/v1/scale", "/readyz", "/metrics", "/v1/status"})
"""Routes the host answers: one job runner, one placement, one view of the metrics (the status
page's figures are read from those metrics, the queue and the placement: the host's too)."""


class RemoteBackend:
    """Stands where a backend would: the front tokenizes, the host's engine computes."""

    name = "engine host"

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        raise RuntimeError("a front process does not run the model")

    def close(self) -> None:
        pass


class EngineLink:
    """One multiplexed connection to the engine host: many requests in flight, replies by id."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self.key = key
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[F32]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path))
            except OSError as exc:
                raise NotReady(f"the engine host is not reachable ({type(exc).__name__}); retry shortly") from None
            writer.write(wire.frame(self.key))
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader))
            return writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                rid, result = wire.decode_reply(await wire.read_frame(reader))
                fut = self._waiting.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if isinstance(result, SqlembedError):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writer = None
            lost = NotReady("the engine host went away; retry shortly")
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(lost)
            self._waiting.clear()

    async def embed(self, ids: Sequence[TokenIds]) -> F32:
        writer = await self._connect()
        rid = next(self._ids) & 0xFFFFFFFF
        fut: asyncio.Future[F32] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        writer.write(wire.encode_request(rid, ids))
        try:
            return await fut
        finally:
            self._waiting.pop(rid, None)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reader_task


class RemoteBatcher:
    """The batcher's face in a front: batching and admission happen once, in the host."""

    def __init__(self, link: EngineLink, dimensions: int) -> None:
        self.link = link
        self.dimensions = dimensions
        self.served: Counter[str] = Counter()
        self.last_request = 0.0
        self._in_flight = 0

    @property
    def queued_texts(self) -> int:
        return self._in_flight

    async def embed(self, encoded: Sequence[TokenIds]) -> F32:
        if not encoded:
            return np.empty((0, self.dimensions), dtype=np.float32)
        self.last_request = time.time()
        self._in_flight += len(encoded)
        try:
            return await self.link.embed(encoded)
        finally:
            self._in_flight -= len(encoded)


async def serve_engine_connection(service: Any, key: bytes, reader: asyncio.StreamReader,
                                  writer: asyncio.StreamWriter) -> None:
    """Host side: one front's connection. Each request goes to the host's one batcher
    (``service.engine()``: the host's api/state.Service, passed in by run/host.py)."""
    tasks: set[asyncio.Task[None]] = set()
    try:
        hello = await asyncio.wait_for(wire.read_frame(reader), 5)
        if not hmac.compare_digest(hello, key):
            log.warning("refused a connection to the engine socket without the run key")
            return

        async def handle(payload: bytes) -> None:
            rid = 0
            try:
                rid, ids = wire.decode_request(payload)
                _, batcher, _ = service.engine()
                out = wire.encode_vectors(rid, await batcher.embed(ids))
            except Exception as exc:  # answered to the front in its envelope, typed
                out = wire.encode_error(rid, exc)
            writer.write(out)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

        while True:
            payload = await wire.read_frame(reader)
            task = asyncio.create_task(handle(payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        writer.close()
