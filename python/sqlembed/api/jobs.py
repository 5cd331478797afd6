"""Job API (submit-and-poll: SQL Server waits at most 230 s and follows no redirects, contract A7/A9)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from sqlembed.api.request import read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput, NotReady
from sqlembed.jobs.runner import JobRunner
from sqlembed.settings import Settings

JOBS = web.AppKey("jobs", JobRunner)
_REQUIRED = ("db", "table", "key", "text", "vector")
_OPTIONAL_STR = ("where", "target_table")


def _runner(request: web.Request) -> JobRunner:
    runner = request.app.get(JOBS)
    if runner is None:
        raise NotReady("the job runner is not available")
    return runner


def parse_job(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _REQUIRED:
        v = body.get(key)
        if not isinstance(v, str) or not v:
            raise InvalidInput(f"'{key}' is required and must be a non-empty string", param=key)
        out[key] = v
    for key in _OPTIONAL_STR:
        v = body.get(key)
        if v is not None:
            if not isinstance(v, str) or not v:
                raise InvalidInput(f"'{key}' must be a non-empty string", param=key)
            out[key] = v
    batch = body.get("batch_rows")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
            raise InvalidInput("'batch_rows' must be an integer from 1 to 100000", param="batch_rows")
        out["batch_rows"] = batch
    # Fault injection for the test suite; the runner ignores it unless SQLEMBED_TEST_FAULTS=1.
    if isinstance(body.get("fail_slice_first_attempt"), int):
        out["fail_slice_first_attempt"] = body["fail_slice_first_attempt"]
        if isinstance(body.get("fault_marker"), str):
            out["fault_marker"] = body["fault_marker"]
    return out


async def submit(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[SERVICE].settings.max_body_bytes)
    job = _runner(request).submit(parse_job(body))
    return json_response(job.public(), status=202)


async def get(request: web.Request) -> web.Response:
    return json_response(_runner(request).store.get(request.match_info["job_id"]).public())


async def list_jobs(request: web.Request) -> web.Response:
    return json_response({"jobs": [j.public() for j in _runner(request).store.list()]})


async def cancel(request: web.Request) -> web.Response:
    return json_response(_runner(request).cancel(request.match_info["job_id"]).public())


def workers_wanted(settings: Settings, backlog_jobs: int, last_request: float, queued_texts: int,
                   now: float) -> int:
    """GPU workers the deployment should run (KEDA reads this through /v1/scale).

    Bulk jobs queued or running want every worker allowed. With placement spark|auto, online
    traffic within ``scale_idle_s`` wants one worker (the first request of a cold start is served
    locally meanwhile), and a queue past a quarter of its limit wants them all.
    """
    if backlog_jobs:
        return settings.scale_max_workers
    if settings.placement == "local" or now - last_request > settings.scale_idle_s:
        return 0
    if queued_texts > settings.max_queue_texts // 4:
        return settings.scale_max_workers
    return min(1, settings.scale_max_workers)


async def scale(request: web.Request) -> web.Response:
    """Scale signal for the GPU workers (a KEDA metrics-api rule reads workers_wanted; docs/deploy.md)."""
    svc = request.app[SERVICE]
    backlog = sum(1 for j in _runner(request).store.list(limit=1000) if j.state in ("queued", "running"))
    batcher = svc.batcher
    last = batcher.last_request if batcher is not None else 0.0
    queued = batcher.queued_texts if batcher is not None else 0
    wanted = workers_wanted(svc.settings, backlog, last, queued, time.time())
    workers = svc.placement.describe().get("workers", []) if svc.placement is not None else []
    return json_response({"backlog_jobs": backlog, "workers_wanted": wanted, "placement": svc.settings.placement,
                          "online_idle_s": round(time.time() - last, 1) if last else None,
                          "queued_texts": queued, "connected_workers": len(workers)})
