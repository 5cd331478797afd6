"""OpenAPI 3.1 description of every route (tests/api/test_openapi.py keeps it true)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sqlembed import __version__
from sqlembed.api.responses import json_response

_TEXTS = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 2048},
    ]
}
_VECTOR = {"type": "array", "items": {"type": "number"}}
_OLLAMA_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_OPENAI_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
    "required": ["error"],
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(schema: dict[str, Any], *codes: int) -> dict[str, Any]:
    text = {400: "invalid request", 401: "missing or wrong API key", 404: "model not found (strict mode)",
            413: "body too large", 415: "not JSON", 422: "cannot be served by this model",
            429: "overloaded; see Retry-After", 503: "model not ready; see Retry-After"}
    return {str(c): {"description": text[c], **_json(schema)} for c in codes}


_EMBED_ERRORS = (400, 401, 404, 413, 415, 422, 429, 503)

_OLLAMA_EMBED_REQ = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string"},
        "input": _TEXTS,
        "truncate": {"type": "boolean", "default": True},
        "dimensions": {"type": "integer", "minimum": 1},
        "keep_alive": {"type": ["string", "number"]},
        "options": {"type": "object"},
    },
}
_OPENAI_REQ = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "input": _TEXTS,
        "model": {"type": "string"},
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
    },
}
_OPENAI_RESP = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "object": {"const": "embedding"}, "index": {"type": "integer"},
            "embedding": {"oneOf": [_VECTOR, {"type": "string", "contentEncoding": "base64"}]}}}},
        "model": {"type": "string"},
        "usage": {"type": "object", "properties": {
            "prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}},
    },
}


_SCALAR = {"type": ["string", "number", "integer", "boolean"]}
_SQLSERVER_REQ = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "model": {"type": "string"},
        "dimensions": {"type": "integer", "minimum": 1},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 2048, "items": {
            "type": "object", "required": ["id", "text"],
            "properties": {"id": _SCALAR, "text": {"type": "string"}}}},
    },
}
_SQLSERVER_RESP = {
    "type": "object",
    "required": ["model", "dimensions", "embeddings", "errors", "usage"],
    "properties": {
        "model": {"type": "string"},
        "dimensions": {"type": "integer"},
        "embeddings": {"type": "array", "items": {"type": "object", "properties": {
            "id": _SCALAR, "embedding": _VECTOR}}},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": ["string", "number", "integer", "boolean", "null"]}, "error": {"type": "string"}}}},
        "usage": {"type": "object"},
    },
}


_JOB_REQ = {
    "type": "object",
    "required": ["db", "table", "key", "text", "vector"],
    "properties": {
        "db": {"type": "string", "minLength": 1, "description": "a name from SQLEMBED_DATABASES"},
        "table": {"type": "string", "minLength": 1}, "key": {"type": "string", "minLength": 1},
        "text": {"type": "string", "minLength": 1}, "vector": {"type": "string", "minLength": 1},
        "where": {"type": "string"}, "target_table": {"type": "string"},
        "batch_rows": {"type": "integer", "minimum": 1, "maximum": 100000},
    },
}
_JOB = {
    "type": "object",
    "required": ["id", "state"],
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "rows_total": {"type": "integer"}, "rows_done": {"type": "integer"}, "rows_failed": {"type": "integer"},
        "rows_per_s": {"type": "number"}, "started": {"type": ["string", "null"]},
        "finished": {"type": ["string", "null"]}, "last_error": {"type": ["string", "null"]},
    },
}


def _openai_op(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, **_json(_OPENAI_REQ)},
        "responses": {"200": {"description": "embeddings", **_json(_OPENAI_RESP)},
                      **_errors(_OPENAI_ERROR, *_EMBED_ERRORS)},
    }
    if params:
        op["parameters"] = params
    return op


def build_spec() -> dict[str, Any]:
    azure_params = [
        {"name": "deployment", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
        {"name": "api-version", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    plain = {"200": {"description": "OK", **_json({"type": "object"})}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "sqlembed", "version": __version__,
                 "description": "Embeddings for SQL Server 2025 over the Ollama and OpenAI protocols."},
        "components": {"securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"apiKey": []}, {"bearer": []}],
        "paths": {
            "/api/embed": {"post": {
                "summary": "Ollama embed (AI_GENERATE_EMBEDDINGS with API_FORMAT='Ollama')",
                "requestBody": {"required": True, **_json(_OLLAMA_EMBED_REQ)},
                "responses": {"200": {"description": "embeddings", **_json({
                    "type": "object", "required": ["model", "embeddings"],
                    "properties": {"model": {"type": "string"},
                                   "embeddings": {"type": "array", "items": _VECTOR},
                                   "total_duration": {"type": "integer"},
                                   "load_duration": {"type": "integer"},
                                   "prompt_eval_count": {"type": "integer"}}})},
                    **_errors(_OLLAMA_ERROR, *_EMBED_ERRORS)}}},
            "/api/embeddings": {"post": {
                "summary": "Ollama legacy single-prompt embedding",
                "requestBody": {"required": True, **_json({
                    "type": "object", "required": ["model", "prompt"],
                    "properties": {"model": {"type": "string"}, "prompt": {"type": "string", "minLength": 1},
                                   "options": {"type": "object"}, "keep_alive": {"type": ["string", "number"]}}})},
                "responses": {"200": {"description": "embedding", **_json({
                    "type": "object", "properties": {"embedding": _VECTOR}})},
                    **_errors(_OLLAMA_ERROR, *_EMBED_ERRORS)}}},
            "/api/tags": {"get": {"summary": "Ollama model list", "responses": {
                **plain, **_errors(_OLLAMA_ERROR, 401, 503)}}},
            "/api/version": {"get": {"summary": "Ollama-compatible version", "responses": {
                **plain, **_errors(_OLLAMA_ERROR, 401)}}},
            "/": {"get": {"summary": "liveness text 'Ollama is running'", "security": [{}], "responses": {
                "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/v1/embeddings": {"post": _openai_op("OpenAI embeddings (API_FORMAT='OpenAI')")},
            "/embeddings": {"post": _openai_op("OpenAI embeddings without the /v1 prefix")},
            "/openai/v1/embeddings": {"post": _openai_op("Azure OpenAI v1 surface")},
            "/openai/deployments/{deployment}/embeddings": {"post": _openai_op(
                "Azure OpenAI deployment route (API_FORMAT='Azure OpenAI')", azure_params)},
            "/v1/models": {"get": {"summary": "OpenAI model list", "responses": {
                **plain, **_errors(_OPENAI_ERROR, 401, 503)}}},
            "/v1/sqlserver/embed": {"post": {
                "summary": "keyed batch for sqlembed.embed_rows (sp_invoke_external_rest_endpoint)",
                "requestBody": {"required": True, **_json(_SQLSERVER_REQ)},
                "responses": {"200": {"description": "vectors and per-row errors", **_json(_SQLSERVER_RESP)},
                              **_errors(_OPENAI_ERROR, *_EMBED_ERRORS)}}},
            "/v1/jobs": {
                "post": {"summary": "submit a bulk embedding job (202 at once; poll GET /v1/jobs/{job_id})",
                         "requestBody": {"required": True, **_json(_JOB_REQ)},
                         "responses": {"202": {"description": "accepted", **_json(_JOB)},
                                       **_errors(_OPENAI_ERROR, 400, 401, 413, 415, 503)}},
                "get": {"summary": "recent jobs", "responses": {
                    "200": {"description": "jobs", **_json({"type": "object"})}, **_errors(_OPENAI_ERROR, 401)}}},
            "/v1/jobs/{job_id}": {
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"summary": "job state and progress", "responses": {
                    "200": {"description": "job", **_json(_JOB)}, **_errors(_OPENAI_ERROR, 401, 404)}},
                "delete": {"summary": "cancel (the Spark job group)", "responses": {
                    "200": {"description": "job", **_json(_JOB)}, **_errors(_OPENAI_ERROR, 401, 404)}}},
            "/v1/scale": {"get": {"summary": "scale signal for GPU workers (KEDA metrics-api)", "responses": {
                "200": {"description": "backlog", **_json({"type": "object", "properties": {
                    "backlog_jobs": {"type": "integer"}, "workers_wanted": {"type": "integer"}}})},
                **_errors(_OPENAI_ERROR, 401)}}},
            "/healthz": {"get": {"summary": "liveness", "security": [{}], "responses": plain}},
            "/readyz": {"get": {
                "summary": "readiness: model loaded and warmed", "security": [{}],
                "responses": {**plain, "503": {"description": "not ready", **_json({"type": "object"})}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors(_OLLAMA_ERROR, 401)}}},
            "/openapi.json": {"get": {"summary": "this document", "responses": {
                **plain, **_errors(_OLLAMA_ERROR, 401)}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_spec())
