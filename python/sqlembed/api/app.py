"""The HTTP application: middlewares, the route table and the OpenAPI document over the service
state (api/state.Service: the engine port) and the job port (api/jobs.JobPort).

HTTP only: which engine, placement, job runner or front link stands behind them is decided by a
composition root (sqlembed/run/), which also owns their lifecycles.
"""

from __future__ import annotations

import time

from aiohttp import web

from sqlembed.api import custom, status
from sqlembed.api.auth import KeyRing, make_auth_middleware
from sqlembed.api.errors import Handler, error_middleware
from sqlembed.api.openapi import SPEC
from sqlembed.api.routes import ROUTES, build_spec
from sqlembed.api.state import SERVICE, Service
from sqlembed.settings import Settings

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


def create_app(svc: Service, *, proxy: Handler | None = None, proxied: frozenset[str] = frozenset()) -> web.Application:
    """Middlewares, the route table and the OpenAPI document; ``proxy`` answers the ``proxied``
    routes instead of their own handlers (a front process: the engine host holds their state)."""
    settings = svc.settings
    middlewares = [metrics_middleware, error_middleware]
    ring = KeyRing(settings.api_key_list(), settings.api_keys_file)
    if ring.enabled:
        middlewares.append(make_auth_middleware(ring, frozenset(r.path for r in ROUTES if r.open)))
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SERVICE] = svc
    app[KEYS] = ring
    formats = _custom_formats(settings)
    for fmt in formats:
        app.router.add_post(fmt.path, custom.make_handler(fmt))
    for r in ROUTES:
        handler = proxy if proxy is not None and r.path in proxied else r.handler
        if r.method == "GET":
            app.router.add_get(r.path, handler)  # also answers HEAD (contract E3: HEAD /api/version)
        else:
            app.router.add_route(r.method, r.path, handler)
    app[SPEC] = build_spec(svc.limits, tuple(f.path for f in formats))
    # The status page's request rate and latency are those of the routes that queue for the
    # engine: the ones that can answer 429, and the configured adapters.
    app[status.WINDOW] = status.RateWindow({r.path for r in ROUTES if 429 in r.errors} | {f.path for f in formats})
    return app
