"""Liveness, readiness (model warmed) and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    if svc.ready and svc.manifest is not None:
        backend = svc.embedder.backend.name if svc.embedder is not None else None
        return json_response({"status": "ready", "model": svc.manifest.id, "backend": backend})
    if svc.load_error is not None:
        return json_response({"status": "failed", "error": svc.load_error}, status=503)
    resp = json_response({"status": "loading"}, status=503)
    resp.headers["Retry-After"] = "1"
    return resp


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
