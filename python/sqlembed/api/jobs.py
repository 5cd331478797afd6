"""Job API (submit-and-poll: SQL Server waits at most 230 s and follows no redirects, contract A7/A9)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sqlembed.api.request import read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput, NotReady
from sqlembed.jobs.runner import JobRunner

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


async def scale(request: web.Request) -> web.Response:
    """Scale signal for the GPU workers (a KEDA metrics-api rule reads workers_wanted; docs/deploy.md)."""
    svc = request.app[SERVICE]
    backlog = sum(1 for j in _runner(request).store.list(limit=1000) if j.state in ("queued", "running"))
    wanted = svc.settings.scale_max_workers if backlog else 0
    return json_response({"backlog_jobs": backlog, "workers_wanted": wanted})
