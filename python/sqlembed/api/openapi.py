"""``GET /openapi.json``: generated from the route table and the protocol models, never written by hand.

A field added to a request model or a response shape appears here without anyone editing this
file; limits that are settings (``max_inputs``) carry the values this server runs with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from sqlembed import __version__
from sqlembed.api.embed import TRUNCATED_HEADER
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import LIMIT, Limits
from sqlembed.api.schemas.ollama import OllamaError
from sqlembed.api.schemas.openai import OpenAIError

REF = "#/components/schemas/{model}"
ERROR_TEXT = {400: "invalid request", 401: "missing or wrong API key", 404: "not found (model in strict mode, job)",
              413: "body too large", 415: "not JSON or not UTF-8", 422: "cannot be served by this model",
              429: "overloaded; see Retry-After", 503: "not ready or a dependency is unavailable; see Retry-After"}


class _Spec:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.components: dict[str, Any] = {}

    def schema(self, tp: Any, mode: str) -> dict[str, Any]:
        schema = TypeAdapter(tp).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        title = schema.get("title")
        if isinstance(title, str) and schema.get("type") == "object" and re.fullmatch(r"\w+", title):
            self.components[title] = schema
            return {"$ref": REF.format(model=title)}
        return schema

    def fill_limits(self, node: Any) -> Any:
        if isinstance(node, dict):
            if LIMIT in node:
                node = dict(node)
                node["maxItems"] = getattr(self.limits, node.pop(LIMIT))
            return {k: self.fill_limits(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.fill_limits(v) for v in node]
        return node


def _parameters(path: str) -> list[dict[str, Any]]:
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for n in re.findall(r"\{(\w+)\}", path)]
    if path.startswith("/openai/deployments/"):
        params.append({"name": "api-version", "in": "query", "required": False, "schema": {"type": "string"}})
    return params


def spec_for(routes: Sequence[Any], limits: Limits | None = None, extra_paths: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document for ``routes`` (api/routes.ROUTES; passed in: the route table names this
    module's handler, so this module cannot import it back)."""

    spec = _Spec(limits or Limits())
    error_refs = {"ollama": spec.schema(OllamaError, "serialization"),
                  "openai": spec.schema(OpenAIError, "serialization")}
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"summary": r.summary, "operationId": f"{r.method.lower()}_{r.handler.__module__}"
                              f".{r.handler.__name__}_{re.sub(r'[^a-z0-9]+', '_', r.path.lower()).strip('_')}"}
        if r.description:
            op["description"] = r.description
        if r.open:
            op["security"] = [{}]
        params = _parameters(r.path)
        if params:
            op["parameters"] = params
        if r.request is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": spec.schema(r.request, "validation")}}}
        if r.content_type == "application/json":
            body = spec.schema(r.response, "serialization") if r.response is not None else {"type": "object"}
        else:
            body = {"type": "string"}
        ok: dict[str, Any] = {"description": "OK", "content": {r.content_type: {"schema": body}}}
        if r.request is not None and "truncation_direction" in r.request.model_fields:
            ok["headers"] = {TRUNCATED_HEADER: {"description": "tokens cut from over-long inputs, all inputs together",
                                                "schema": {"type": "integer", "minimum": 0}}}
        responses: dict[str, Any] = {str(r.status): ok}
        for status, body_type, when in r.also:
            responses[str(status)] = {"description": when, "content": {"application/json": {
                "schema": spec.schema(body_type, "serialization")}}}
        error_schema = (spec.schema(r.error_body, "serialization") if r.error_body is not None
                        else error_refs[r.protocol])
        for code in r.errors:
            responses[str(code)] = {"description": ERROR_TEXT[code],
                                    "content": {"application/json": {"schema": error_schema}}}
        op["responses"] = responses
        paths.setdefault(r.path, {})[r.method.lower()] = op
    for path in extra_paths:  # SQLEMBED_CUSTOM_FORMATS routes: shapes are the operator's own
        paths[path] = {"post": {"summary": "configured JSON adapter (docs/formats.md)",
                                "requestBody": {"required": True, "content": {"application/json": {
                                    "schema": {"type": "object"}}}},
                                "responses": {"200": {"description": "OK", "content": {"application/json": {
                                    "schema": {}}}},
                                    **{str(c): {"description": ERROR_TEXT[c], "content": {"application/json": {
                                        "schema": error_refs["ollama"]}}} for c in EMBED_ERRORS_CUSTOM}}}}
    document: dict[str, Any] = spec.fill_limits({
        "openapi": "3.1.0",
        "info": {"title": "sqlembed", "version": __version__,
                 "description": "Embeddings for SQL Server 2025 over the Ollama and OpenAI protocols."},
        "components": {"schemas": spec.components, "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"apiKey": []}, {"bearer": []}],
        "paths": paths,
    })
    return document


EMBED_ERRORS_CUSTOM = (400, 401, 413, 415, 429, 503)

SPEC = web.AppKey("openapi_spec", dict)


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[SPEC])
