"""``sqlembed serve --workers N``: the engine host process and its N front processes.

The host (this process) opens the model once, runs the one batcher and the one placement, and
serves its full app (run/service.py) on a private Unix socket; N front processes (run/front.py)
share the public port (SO_REUSEPORT: the kernel spreads connections over them), each doing HTTP,
TLS, auth, JSON and tokenization on its own core, and send token ids to the host's batcher over a
second Unix socket (fronts/). Why one batcher in the host rather than one per front: the engine
wants full batches (a GPU most of all) and N batchers would each see 1/N of the traffic;
admission (429) is then exactly the one queue's limit; a GPU is loaded once; and placement=spark
keeps one dispatcher that owns the executors. The price is one local round trip per request,
measured in docs/benchmarks.md.

Both sockets live in a directory only this user can enter (mkdtemp, 0700); the engine socket
also wants a 32-byte run key first, which the fronts get on their stdin with their settings
(never on a command line, in the environment or in a file).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sqlembed import __version__
from sqlembed.engine.embedder import Embedder
from sqlembed.run.loop import new_event_loop
from sqlembed.settings import Settings

log = logging.getLogger("sqlembed")
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def settings_payload(settings: Settings) -> dict[str, Any]:
    """The settings as the front must rebuild them, secrets included (they travel on a pipe)."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out


class Fronts:
    """Starts the front processes and starts a new one when one dies."""

    def __init__(self, settings: Settings, run_dir: Path, key: bytes) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.key = key
        self.procs: list[asyncio.subprocess.Process] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def _spawn(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sqlembed.run.front", str(self.run_dir), stdin=asyncio.subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"key": self.key.hex(), "settings": settings_payload(self.settings)}).encode()
                         + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        return proc

    async def _keep(self, slot: int) -> None:
        delay = 0.5
        while not self._stopping:
            proc = await self._spawn()
            self.procs[slot] = proc
            code = await proc.wait()
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(proc.pid)  # type: ignore[no-untyped-call]
            if self._stopping:
                return
            log.error("front process %d exited with %s; starting another in %.1f s", proc.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def start(self) -> None:
        self.procs = [None] * self.settings.workers  # type: ignore[list-item]
        self._tasks = [asyncio.create_task(self._keep(i)) for i in range(self.settings.workers)]

    async def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 15)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def serve_with_fronts(settings: Settings, embedder: Embedder | None = None) -> None:
    """Run until stopped: the host app on its socket, the engine socket, the fronts on the port.

    ``embedder``: an opened engine (benchmarks pass their own); None opens the settings' one
    before anything listens.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="sqlembed-run-"))
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    if "prometheus_client" in sys.modules:
        # prometheus-client picks its value store at import: the shared directory must come first.
        raise RuntimeError("serve --workers: prometheus_client was imported before the metrics directory was set")
    os.environ[METRICS_ENV] = str(metrics_dir)
    from aiohttp import web

    from sqlembed.api.app import INTERNAL
    from sqlembed.api.state import SERVICE
    from sqlembed.fronts.front import serve_engine_connection
    from sqlembed.run.engine import open_engine
    from sqlembed.run.service import check_tls, service_app

    check_tls(settings)  # the fronts serve TLS: a bad pair is one clear line here, not N dying fronts
    log.info("sqlembed %s on %s:%d with %d front processes", __version__, settings.host, settings.port,
             settings.workers)
    app = service_app(settings, embedder if embedder is not None else open_engine(settings))
    app[INTERNAL] = True
    key = os.urandom(32)

    async def engine_socket(app: web.Application) -> AsyncIterator[None]:
        server = await asyncio.start_unix_server(functools.partial(serve_engine_connection, app[SERVICE], key),
                                                 path=str(run_dir / "engine.sock"))
        fronts = Fronts(settings, run_dir, key)
        await fronts.start()
        log.info("engine host ready for %d front processes on %s:%d", settings.workers, settings.host, settings.port)
        yield
        await fronts.stop()
        server.close()
        await server.wait_closed()

    app.cleanup_ctx.append(engine_socket)
    try:
        # No access log here: the fronts log every request once, the proxied ones included.
        web.run_app(app, path=str(run_dir / "app.sock"), access_log=None, print=None,
                    loop=new_event_loop(settings))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
