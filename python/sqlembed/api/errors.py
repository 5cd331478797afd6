"""The one table from domain errors to HTTP status + body, per protocol; the error middleware."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from aiohttp import web

from sqlembed import errors as e

log = logging.getLogger(__name__)

Protocol = Literal["ollama", "openai"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# error class -> (HTTP status, OpenAI error type, OpenAI error code)
ERROR_TABLE: dict[type[e.SqlembedError], tuple[int, str, str]] = {
    e.InvalidInput: (400, "invalid_request_error", "invalid_input"),
    e.Unauthorized: (401, "invalid_request_error", "invalid_api_key"),
    e.ModelNotFound: (404, "invalid_request_error", "model_not_found"),
    e.JobNotFound: (404, "invalid_request_error", "job_not_found"),
    e.PayloadTooLarge: (413, "invalid_request_error", "payload_too_large"),
    e.UnsupportedMediaType: (415, "invalid_request_error", "unsupported_media_type"),
    e.UnprocessableInput: (422, "invalid_request_error", "unprocessable_input"),
    e.Overloaded: (429, "rate_limit_error", "overloaded"),
    e.NotReady: (503, "server_error", "not_ready"),
    e.BackendUnavailable: (503, "server_error", "backend_unavailable"),
    e.StoreUnavailable: (503, "server_error", "job_store_unavailable"),
    e.DatabaseUnavailable: (503, "server_error", "database_unavailable"),
    e.ModelBuildError: (500, "server_error", "model_build_failed"),
}

_OPENAI_PREFIXES = ("/v1/", "/openai/", "/embeddings")


def protocol_of(path: str) -> Protocol:
    return "openai" if path.startswith(_OPENAI_PREFIXES) else "ollama"


def error_response(
    protocol: Protocol, status: int, message: str, *, etype: str = "invalid_request_error",
    code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any]
    if protocol == "openai":
        body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    else:
        body = {"error": message}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers=headers)


def _lookup(exc: e.SqlembedError) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 500, "server_error", "internal_error"


# Request ids: a random per-process prefix and a counter (32 hex digits, like uuid4().hex).
# uuid4 reads os.urandom on every call: 12% of the front's CPU per single-text request (py-spy,
# docs/benchmarks.md). The ids only need to be unique, not unpredictable.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("x-request-id") or new_request_id()
    if len(request_id) > 128 or not request_id.isprintable():
        request_id = new_request_id()
    request[REQUEST_ID] = request_id  # a front's proxy passes it on to the engine host
    proto = protocol_of(request.path)
    try:
        resp = await handler(request)
    except e.SqlembedError as exc:
        status, etype, code = _lookup(exc)
        headers = {}
        if isinstance(exc, e.Overloaded | e.NotReady):
            # Contract A8: SQL Server's @retry_count honours Retry-After on 429/503.
            headers["Retry-After"] = str(int(getattr(exc, "retry_after", 1)))
        resp = error_response(proto, status, exc.message, etype=etype, code=code, param=exc.param,
                              headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            message = "request body is larger than the server's limit"
        else:
            message = f"{exc.reason}: {request.method} {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        resp = error_response(proto, exc.status, message, etype="invalid_request_error",
                              code=exc.reason.lower().replace(" ", "_"), headers=headers)
    except Exception:
        log.exception("internal error (request id %s) on %s %s", request_id, request.method, request.path)
        resp = error_response(proto, 500, f"internal server error (request id {request_id})",
                              etype="server_error", code="internal_error")
    resp.headers["x-request-id"] = request_id
    return resp
