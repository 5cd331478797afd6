"""``sqlembed serve``: the service process (and, under ``--workers N``, the engine host's app).

The only place that builds the service's objects from ``Settings``: the engine (run/engine.py),
the batcher, the placement, the job store and runner behind ``api/jobs.JobPort``, the Spark
session they share, and the HTTP app (api/app.py), with the order in which they start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from aiohttp import web

from sqlembed import __version__
from sqlembed.api import jobs
from sqlembed.api.app import KEYS, create_app
from sqlembed.api.schemas.jobs import DryRun, JobRecord
from sqlembed.api.state import Service
from sqlembed.engine.backend import Backend, describe_backend
from sqlembed.engine.batcher import Batcher
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.placement import LocalPlacement, Placement
from sqlembed.errors import SqlembedError, StoreUnavailable
from sqlembed.jobs.runner import JobRunner
from sqlembed.jobs.store import Job
from sqlembed.run.bulk import bulk_settings, pricing
from sqlembed.run.engine import open_engine
from sqlembed.settings import Settings
from sqlembed.spark.session import SessionHolder, spark_conf

log = logging.getLogger("sqlembed")


class JobsPort:
    """The job runner behind the API's job port: records in the API's shape."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    @staticmethod
    def _record(job: Job) -> JobRecord:
        return job.public()

    def submit(self, fields: dict[str, Any]) -> JobRecord:
        return self._record(self.runner.submit(fields))

    def get(self, job_id: str) -> JobRecord:
        return self._record(self.runner.store.get(job_id))

    def list(self) -> list[JobRecord]:
        return [self._record(j) for j in self.runner.store.list()]

    def cancel(self, job_id: str) -> JobRecord:
        return self._record(self.runner.cancel(job_id))

    def dry_run(self, fields: dict[str, Any]) -> DryRun:
        return cast(DryRun, self.runner.dry_run(fields))

    def backlog(self) -> int:
        return self.runner.backlog()


def _placement(svc: Service, embedder: Embedder, session: SessionHolder) -> Placement:
    s = svc.settings
    if s.placement == "local":
        return LocalPlacement(embedder)
    from sqlembed.spark.online.placement import SparkPlacement

    m = svc.metrics
    placement = SparkPlacement(
        mode=s.placement, local=embedder, session=session, engine=s.engine_settings(),
        require_gpu=s.spark_gpu, online_gpu_amount=s.spark_online_gpu_amount, bind_host=s.dispatch_host,
        bind_port=s.dispatch_port, timeout_s=s.dispatch_timeout_s, wait_limit_s=s.dispatch_wait_s,
        concurrency=s.dispatch_concurrency, on_overhead=m.dispatch_overhead.observe, on_workers=m.spark_workers.set,
    )
    placement.start()
    return placement


def service_app(settings: Settings, engine: Embedder | Backend | None = None,
                spark_factory: Callable[[], Any] | None = None) -> web.Application:
    """The service's app with its lifecycle. ``engine``: an opened engine (``serve`` opens it before
    the port opens), or a backend to run instead of the one the settings name (tests); None opens
    the settings' one off the loop, so /healthz answers while weights load."""
    svc = Service(settings)
    session = SessionHolder(
        spark_conf(settings.spark_master, gpu=settings.spark_gpu, task_gpu_amount=settings.spark_task_gpu_amount),
        spark_factory,
    )
    app = create_app(svc)

    def load() -> Embedder:
        embedder = engine if isinstance(engine, Embedder) else open_engine(settings, backend=engine, build=False)
        embedder.warmup()
        return embedder

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        async def start() -> None:
            try:
                embedder = await asyncio.to_thread(load)
            except Exception as exc:
                svc.load_error = f"{type(exc).__name__}: {exc}"
                log.error("model load failed: %s", svc.load_error)
                return
            svc.manifest = embedder.manifest
            placement = _placement(svc, embedder, session)
            svc.placement = placement
            batcher = Batcher(
                embedder, max_batch_items=settings.max_batch_items, max_batch_tokens=settings.max_batch_tokens,
                max_queue_texts=settings.max_queue_texts, max_wait_ms=settings.max_wait_ms,
                max_padding_share=settings.max_padding_share,
                retry_after_s=settings.retry_after_s, observer=svc.metrics.observe_batch, placement=placement,
            )
            batcher.start()
            svc.metrics.track_queue(lambda: batcher.queued_texts)
            svc.embedder = embedder
            svc.batcher = batcher
            log.info("ready: model %s (%d dimensions), engine %s", embedder.manifest.id,
                     embedder.dimensions, describe_backend(embedder.backend))

        task = asyncio.create_task(start())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if svc.batcher is not None:
            await asyncio.to_thread(svc.batcher.close)
        if svc.placement is not None:
            await asyncio.to_thread(svc.placement.close)
        if svc.embedder is not None:
            svc.embedder.close()

    async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
        from sqlembed.jobs.store import fail_interrupted, open_store

        store = open_store(settings.job_store_url())
        try:
            interrupted = await asyncio.to_thread(fail_interrupted, store)
        except StoreUnavailable as exc:  # online embedding does not need the store
            log.error("%s; job submissions will fail until it is reachable", exc.message)
            interrupted = 0
        if interrupted:
            log.warning("%d job(s) were interrupted by a restart and are marked failed", interrupted)
        runner = JobRunner(bulk_settings(settings), settings.database_urls(), store, session,
                           engine=lambda: svc.engine()[0], pricing=pricing(settings))
        app[jobs.JOBS] = JobsPort(runner)
        yield
        await asyncio.to_thread(runner.close)
        await asyncio.to_thread(store.close)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        # Registered first, so it runs last: after online dispatch and bulk jobs let go of it.
        await asyncio.to_thread(session.close)

    app.cleanup_ctx.append(session_ctx)
    app.cleanup_ctx.append(engine_ctx)
    app.cleanup_ctx.append(jobs_ctx)
    return app


def check_tls(settings: Settings) -> Any:
    """The server's TLS context, or None for plain HTTP."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SqlembedError("--tls-cert and --tls-key go together")
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    from sqlembed.tls import server_context

    return server_context(settings.tls_cert, settings.tls_key)


def serve(settings: Settings) -> None:
    """Run the service until stopped (one process; ``workers > 1``: run/host.py)."""
    from sqlembed.api.accesslog import AccessLogger
    from sqlembed.run.loop import describe, new_event_loop

    ssl_ctx = check_tls(settings)
    keyless = not settings.api_key_list() and settings.api_keys_file is None
    if keyless and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without API keys: set SQLEMBED_API_KEYS", settings.host)
    loop = new_event_loop(settings)
    log.info("sqlembed %s on %s://%s:%d (event loop: %s)", __version__, "https" if ssl_ctx else "http",
             settings.host, settings.port, describe(loop))
    # Opened before the port opens: a missing or corrupt model is one clear line and exit code 2.
    app = service_app(settings, open_engine(settings))
    if settings.api_keys_file is not None:
        async def on_sighup(app: web.Application) -> None:
            import signal

            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, app[KEYS].reload)

        app.on_startup.append(on_sighup)
    web.run_app(app, host=settings.host, port=settings.port, ssl_context=ssl_ctx,
                access_log_class=AccessLogger, print=None, loop=loop)
