"""``sqlembed serve --workers N``: the engine host and its N front processes.

The host (this process) opens the model once, runs the one batcher and the one placement, and
serves its full app on a private Unix socket; N front processes share the public port
(SO_REUSEPORT: the kernel spreads connections over them), each doing HTTP, TLS, auth, JSON and
tokenization on its own core, and send token ids to the host's batcher over a second Unix
socket. Why one batcher in the host rather than one per front: the engine wants full batches
(a GPU most of all) and N batchers would each see 1/N of the traffic; admission (429) is then
exactly the one queue's limit; a GPU is loaded once; and placement=spark keeps one dispatcher
that owns the executors. The price is one local round trip per request, measured in
docs/benchmarks.md.

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

from sqlembed.settings import Settings

log = logging.getLogger(__name__)
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
            sys.executable, "-m", "sqlembed.fronts", str(self.run_dir), stdin=asyncio.subprocess.PIPE)
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


def serve_with_fronts(settings: Settings, embedder: Any = None) -> None:
    """Run until stopped: the host app on its socket, the engine socket, the fronts on the port.

    ``embedder``: an opened engine (the CLI opens it before anything listens; benchmarks pass
    their own); None opens the one the settings name.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="sqlembed-run-"))
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir()
    if "prometheus_client" in sys.modules:
        # prometheus-client picks its value store at import: the shared directory must come first.
        raise RuntimeError("serve --workers: prometheus_client was imported before the metrics directory was set")
    os.environ[METRICS_ENV] = str(metrics_dir)
    from aiohttp import web

    from sqlembed.api.app import create_app
    from sqlembed.api.state import SERVICE
    from sqlembed.engine.config import EngineSettings
    from sqlembed.engine.opener import open_embedder
    from sqlembed.fronts.front import serve_engine_connection

    if embedder is None:
        embedder = open_embedder(EngineSettings.from_settings(settings))
    from sqlembed.api.app import INTERNAL

    app = create_app(settings, backend=embedder)
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
        web.run_app(app, path=str(run_dir / "app.sock"), access_log=None, print=None)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_front(run_dir: Path) -> None:
    """A front process: settings and run key from stdin, then the public port with SO_REUSEPORT."""
    from aiohttp import web

    from sqlembed.api.accesslog import AccessLogger
    from sqlembed.api.app import create_app
    from sqlembed.fronts.front import FrontLink

    data = json.loads(sys.stdin.readline())
    settings = Settings(**data["settings"])
    ssl_ctx = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        from sqlembed.tls import server_context

        ssl_ctx = server_context(settings.tls_cert, settings.tls_key)
    app = create_app(settings, front=FrontLink(run_dir, bytes.fromhex(data["key"])))
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=True, ssl_context=ssl_ctx,
                access_log_class=AccessLogger, print=None)
