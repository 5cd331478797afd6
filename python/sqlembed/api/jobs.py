"""Job API (submit-and-poll: SQL Server waits at most 230 s and follows no redirects, contract A7/A9)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from aiohttp import web

from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import parse, read_body
from sqlembed.api.schemas.jobs import DryRun, JobList, JobRecord, JobRequest, Scale
from sqlembed.api.state import SERVICE
from sqlembed.errors import NotReady
from sqlembed.settings import Settings


class JobPort(Protocol):
    """What the job routes need (sqlembed/run/service.py puts the job runner behind it)."""

    def submit(self, fields: dict[str, Any]) -> JobRecord:
        """Validate, check the table in its database, record and queue. Blocking."""

    def dry_run(self, fields: dict[str, Any]) -> DryRun:
        """Check the job as ``submit`` does and say what it would do; records and writes nothing. Blocking."""

    def get(self, job_id: str) -> JobRecord: ...

    def list(self) -> list[JobRecord]: ...

    def cancel(self, job_id: str) -> JobRecord: ...

    def backlog(self) -> int:
        """Jobs queued or running."""


JOBS = web.AppKey("jobs", JobPort)


def _runner(request: web.Request) -> JobPort:
    runner = request.app.get(JOBS)
    if runner is None:
        raise NotReady("the job runner is not available")
    return runner


async def submit(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    req = parse(JobRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, "/v1/jobs")
    fields = req.model_dump(exclude_none=True, exclude={"dry_run", *(req.model_extra or ())})
    if req.dry_run:
        # Counting rows and timing the engine on a sample: off the event loop.
        return json_response(await asyncio.to_thread(_runner(request).dry_run, fields))
    # Submission checks the table in its database (a round trip): off the event loop.
    job = await asyncio.to_thread(_runner(request).submit, fields)
    return json_response(job, status=202)


async def get(request: web.Request) -> web.Response:
    return json_response(_runner(request).get(request.match_info["job_id"]))


async def list_jobs(request: web.Request) -> web.Response:
    body: JobList = {"jobs": _runner(request).list()}
    return json_response(body)


async def cancel(request: web.Request) -> web.Response:
    return json_response(_runner(request).cancel(request.match_info["job_id"]))


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
    backlog = _runner(request).backlog()
    batcher = svc.batcher
    last = batcher.last_request if batcher is not None else 0.0
    queued = batcher.queued_texts if batcher is not None else 0
    workers = svc.placement.describe().get("workers", []) if svc.placement is not None else []
    body: Scale = {"backlog_jobs": backlog,
                   "workers_wanted": workers_wanted(svc.settings, backlog, last, queued, time.time()),
                   "placement": svc.settings.placement,
                   "online_idle_s": round(time.time() - last, 1) if last else None,
                   "queued_texts": queued, "connected_workers": len(workers)}
    return json_response(body)
