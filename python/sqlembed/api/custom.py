"""Configurable adapter: accept a user's own JSON shape without code (docs/formats.md).

Each entry of SQLEMBED_CUSTOM_FORMATS names a route, JSONPath selectors (jsonpath-ng) for the
texts and optional ids, and a response template with placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from jsonpath_ng.jsonpath import JSONPath
from jsonpath_ng.parser import parse as jsonpath

from sqlembed.api.embed import EmbedOptions, embed_texts
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import Dimensions, Request, parse, read_body
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput

PLACEHOLDERS = ("{id}", "{index}", "{embedding}", "{model}", "{dimensions}", "{tokens}")


class CustomRequest(Request):
    """Any JSON object; only ``dimensions`` has a meaning of its own."""

    dimensions: Dimensions | None = None


def parse_path(path: str) -> JSONPath:
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"path {path!r} must start with $")
    try:
        return jsonpath(path)
    except Exception as exc:  # jsonpath-ng raises its own parser errors (and Exception for lexer ones)
        raise ValueError(f"path {path!r} is not a JSONPath: {exc}") from None


def select(doc: Any, path: JSONPath) -> list[Any]:
    """Every value the path reaches, in document order; missing branches yield nothing."""
    return [m.value for m in path.find(doc)]


@dataclass(frozen=True)
class CustomFormat:
    name: str
    path: str
    texts: JSONPath
    ids: JSONPath | None
    response: Any

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> CustomFormat:
        missing = [k for k in ("name", "path", "texts", "response") if k not in raw]
        if missing:
            raise ValueError(f"custom format needs {missing}")
        if not str(raw["path"]).startswith("/custom/"):
            raise ValueError("custom format paths live under /custom/ so they never shadow a protocol route")
        return cls(raw["name"], raw["path"], parse_path(raw["texts"]),
                   parse_path(raw["ids"]) if raw.get("ids") else None, raw["response"])

    def render(self, template: Any, values: dict[str, Any], items: list[dict[str, Any]]) -> Any:
        if isinstance(template, str) and template in PLACEHOLDERS:
            return values.get(template[1:-1])
        if isinstance(template, list):
            # A one-element list is the per-item template, repeated for every input.
            if len(template) == 1:
                return [self.render(template[0], {**values, **item}, []) for item in items]
            return [self.render(t, values, items) for t in template]
        if isinstance(template, dict):
            return {k: self.render(v, values, items) for k, v in template.items()}
        return template


def make_handler(fmt: CustomFormat) -> Any:
    async def handler(request: web.Request) -> web.Response:
        svc = request.app[SERVICE]
        req = parse(CustomRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, fmt.path,
                    log_extra=False)
        body = {**(req.model_extra or {}), "dimensions": req.dimensions}
        texts = select(body, fmt.texts)
        if not texts:
            raise InvalidInput(f"no texts found in the request (format {fmt.name!r})")
        if not all(isinstance(t, str) and t for t in texts):
            raise InvalidInput(f"every selected text must be a non-empty string (format {fmt.name!r})")
        if len(texts) > svc.limits.max_inputs:
            raise InvalidInput(f"too many inputs: {len(texts)} (limit {svc.limits.max_inputs} per request)")
        ids = select(body, fmt.ids) if fmt.ids else list(range(len(texts)))
        if len(ids) != len(texts):
            raise InvalidInput(f"found {len(texts)} texts but {len(ids)} ids (format {fmt.name!r})")
        model = svc.resolve_model(None)
        result = await embed_texts(svc, texts, EmbedOptions(dimensions=req.dimensions))
        items = [{"id": i, "index": n, "embedding": result.vectors[n]} for n, i in enumerate(ids)]
        values = {"model": model, "dimensions": int(result.vectors.shape[1]), "tokens": result.tokens}
        return json_response(fmt.render(fmt.response, values, items), headers=result.headers())

    return handler
