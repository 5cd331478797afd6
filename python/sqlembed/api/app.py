"""The service's composition root: ``create_app(settings, backend=None)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from sqlembed.api import custom, jobs, openapi
from sqlembed.api.auth import KeyRing, make_auth_middleware
from sqlembed.api.errors import REQUEST_ID, Handler, error_middleware
from sqlembed.api.routes import ROUTES
from sqlembed.api.state import SERVICE, Service
from sqlembed.engine.backend import Backend, describe_backend
from sqlembed.engine.batcher import Batcher
from sqlembed.engine.config import EngineSettings
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.opener import open_embedder
from sqlembed.engine.placement import LocalPlacement, Placement
from sqlembed.errors import StoreUnavailable
from sqlembed.fronts.front import PROXIED, FrontLink, RemoteBackend, RemoteBatcher
from sqlembed.settings import Settings
from sqlembed.spark.session import SessionHolder, spark_conf

log = logging.getLogger(__name__)

KEYS = web.AppKey("keys", KeyRing)


INTERNAL = web.AppKey("internal", bool)
"""Set on the engine host's app under ``serve --workers``: its requests come from the fronts'
proxies, which counted them already."""


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.app.get(INTERNAL):
        return await handler(request)
    t0 = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        m = request.app[SERVICE].metrics
        m.requests.labels(route, request.method, str(status)).inc()
        m.latency.labels(route).observe(time.perf_counter() - t0)
        if status == 429:
            m.rejected.inc()


def _load(svc: Service, engine: Embedder | Backend | None) -> Embedder:
    if isinstance(engine, Embedder):
        embedder = engine
    else:
        embedder = open_embedder(EngineSettings.from_settings(svc.settings), backend=engine)
    embedder.warmup()
    svc.manifest = embedder.manifest
    return embedder


def _placement(svc: Service, embedder: Embedder, session: SessionHolder) -> Placement:
    s = svc.settings
    if s.placement == "local":
        return LocalPlacement(embedder)
    from sqlembed.spark.online.placement import SparkPlacement

    m = svc.metrics
    placement = SparkPlacement(
        mode=s.placement, local=embedder, session=session, engine=EngineSettings.from_settings(s),
        require_gpu=s.spark_gpu, online_gpu_amount=s.spark_online_gpu_amount, bind_host=s.dispatch_host,
        bind_port=s.dispatch_port, timeout_s=s.dispatch_timeout_s, wait_limit_s=s.dispatch_wait_s,
        concurrency=s.dispatch_concurrency, on_overhead=m.dispatch_overhead.observe, on_workers=m.spark_workers.set,
    )
    placement.start()
    return placement


def _custom_formats(settings: Settings) -> list[custom.CustomFormat]:
    import json

    try:
        raw = json.loads(settings.custom_formats or "[]")
        formats = [custom.CustomFormat.from_config(r) for r in raw]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"SQLEMBED_CUSTOM_FORMATS is not valid: {exc}") from exc
    taken = {r.path for r in ROUTES}
    for f in formats:
        if f.path in taken:
            raise ValueError(f"SQLEMBED_CUSTOM_FORMATS: {f.path} is already a route")
        taken.add(f.path)
    return formats


def create_app(settings: Settings, backend: Embedder | Backend | None = None,
               spark_factory: Callable[[], Any] | None = None, front: FrontLink | None = None) -> web.Application:
    """The service. ``backend``: an opened engine (the CLI opens it before the port opens) or a
    backend to run instead of the one the settings name (tests); None opens it from the settings.
    ``front``: run as one of ``serve --workers N``'s front processes (sqlembed/fronts): tokenize
    here, embed in the engine host, let the host answer what holds state."""
    if front is not None:
        return _front_app(settings, front)
    svc = Service(settings)
    session = SessionHolder(
        spark_conf(settings.spark_master, gpu=settings.spark_gpu, task_gpu_amount=settings.spark_task_gpu_amount),
        spark_factory,
    )
    app = _web_app(svc)

    async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                # Load off the loop so /healthz answers while weights load and warm up.
                embedder = await asyncio.to_thread(_load, svc, backend)
            except Exception as exc:
                svc.load_error = f"{type(exc).__name__}: {exc}"
                log.error("model load failed: %s", svc.load_error)
                return
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

        task = asyncio.create_task(load())
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
        from sqlembed.jobs.runner import JobRunner
        from sqlembed.jobs.store import fail_interrupted, open_store

        store = open_store(settings.job_store_url())
        try:
            interrupted = await asyncio.to_thread(fail_interrupted, store)
        except StoreUnavailable as exc:  # online embedding does not need the store
            log.error("%s; job submissions will fail until it is reachable", exc.message)
            interrupted = 0
        if interrupted:
            log.warning("%d job(s) were interrupted by a restart and are marked failed", interrupted)
        runner = JobRunner(settings, store, session)
        app[jobs.JOBS] = runner
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


def _web_app(svc: Service, proxied: Handler | None = None) -> web.Application:
    """Middlewares, the route table and the OpenAPI document; ``proxied`` answers the PROXIED
    routes instead of their own handlers (a front process)."""
    settings = svc.settings
    middlewares = [metrics_middleware, error_middleware]
    ring = KeyRing(settings.api_key_list(), settings.api_keys_file)
    if ring.enabled:
        middlewares.append(make_auth_middleware(ring))
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SERVICE] = svc
    app[KEYS] = ring
    formats = _custom_formats(settings)
    for fmt in formats:
        app.router.add_post(fmt.path, custom.make_handler(fmt))
    for r in ROUTES:
        handler = proxied if proxied is not None and r.path in PROXIED else r.handler
        if r.method == "GET":
            app.router.add_get(r.path, handler)  # also answers HEAD (contract E3: HEAD /api/version)
        else:
            app.router.add_route(r.method, r.path, handler)
    app[openapi.SPEC] = openapi.build_spec(svc.limits, tuple(f.path for f in formats))
    return app


def _front_app(settings: Settings, front: FrontLink) -> web.Application:
    svc = Service(settings)
    proxy = _HostProxy(front.app_socket)
    app = _web_app(svc, proxied=proxy.handle)

    async def link_ctx(app: web.Application) -> AsyncIterator[None]:
        # The tokenizer and manifest only: the model lives in the engine host.
        embedder = await asyncio.to_thread(open_embedder, EngineSettings.from_settings(settings), RemoteBackend())
        svc.manifest = embedder.manifest
        svc.embedder = embedder
        svc.batcher = RemoteBatcher(front.engine, embedder.dimensions)  # type: ignore[assignment]
        await proxy.open()
        yield
        await front.engine.close()
        await proxy.close()

    app.cleanup_ctx.append(link_ctx)
    return app


class _HostProxy:
    """Forwards a request to the engine host's own app over its Unix socket, as it came."""

    _HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, path: Any) -> None:
        self.path = path
        self.session: Any = None

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.path)),
                                             timeout=aiohttp.ClientTimeout(total=300), auto_decompress=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        from sqlembed.errors import NotReady

        headers = {k: v for k, v in request.headers.items() if k.lower() not in self._HOP}
        headers["x-request-id"] = request.get(REQUEST_ID, headers.get("x-request-id", ""))
        try:
            async with self.session.request(request.method, "http://engine-host" + request.path_qs,
                                            headers=headers, data=await request.read()) as r:
                body = await r.read()
                keep = {k: v for k, v in r.headers.items() if k.lower() not in self._HOP}
                return web.Response(body=body, status=r.status, headers=keep)
        except aiohttp.ClientError:
            raise NotReady("the engine host is not reachable; retry shortly") from None
