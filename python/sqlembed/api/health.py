"""Liveness, readiness (model warmed) and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from sqlembed.api.responses import json_response
from sqlembed.api.schemas.service import Health, Ready
from sqlembed.api.state import SERVICE
from sqlembed.engine.backend import describe_backend
from sqlembed.engine.placement import WAITING


async def healthz(request: web.Request) -> web.Response:
    body: Health = {"status": "ok"}
    return json_response(body)


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    placement = svc.placement.describe() if svc.placement is not None else {}
    state = svc.state(placement)
    if state == "failed":
        assert svc.load_error is not None
        failed: Ready = {"status": "failed", "error": svc.load_error}
        return json_response(failed, status=503)
    if state == "loading" or svc.manifest is None:
        loading: Ready = {"status": "loading"}
        resp = json_response(loading, status=503)
        resp.headers["Retry-After"] = "1"
        return resp
    body: Ready = {"status": state, "model": svc.manifest.id, "dimensions": svc.manifest.dimensions,
                   "prompts": svc.manifest.prompts_by_input_type(),
                   "backend": svc.embedder.backend.name if svc.embedder is not None else None,
                   "vector_id": svc.manifest.vector_id}
    if svc.embedder is not None:
        body["engine"] = describe_backend(svc.embedder.backend)
    if placement and svc.batcher is not None:
        placement["batches"] = dict(svc.batcher.served)
        body["placement"] = placement
    if state == WAITING:
        # Requests would only wait for an executor: send them elsewhere.
        resp = json_response(body, status=503)
        resp.headers["Retry-After"] = "5"
        return resp
    return json_response(body)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
