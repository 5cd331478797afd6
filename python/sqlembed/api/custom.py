"""Configurable adapter: accept a user's own JSON shape without code (docs/formats.md).

Each entry of SQLEMBED_CUSTOM_FORMATS names a route, JSONPath-like selectors for the texts (and
optional ids) and a response template. The selectors support `$`, `.field`, `[n]` and `[*]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sqlembed.api.embed import embed_texts
from sqlembed.api.request import opt_dimensions, read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\*|\d+)\]")
PLACEHOLDERS = ("{id}", "{index}", "{embedding}", "{model}", "{dimensions}", "{tokens}")


def parse_path(path: str) -> list[str | int | None]:
    """`$.a[*].b` -> ["a", None, "b"] (None is the wildcard)."""
    if not path.startswith("$"):
        raise ValueError(f"path {path!r} must start with $")
    steps: list[str | int | None] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise ValueError(f"unsupported path syntax at {path[pos:]!r} in {path!r}")
        field, index = m.groups()
        steps.append(field if field is not None else (None if index == "*" else int(index)))
        pos = m.end()
    return steps


def select(doc: Any, steps: list[str | int | None]) -> list[Any]:
    """Every value the path reaches, in document order; missing branches yield nothing."""
    current = [doc]
    for step in steps:
        nxt: list[Any] = []
        for value in current:
            if isinstance(value, list):
                if step is None:
                    nxt.extend(value)
                elif isinstance(step, int) and -len(value) <= step < len(value):
                    nxt.append(value[step])
            elif isinstance(value, dict) and isinstance(step, str) and step in value:
                nxt.append(value[step])
        current = nxt
    return current


@dataclass(frozen=True)
class CustomFormat:
    name: str
    path: str
    texts: list[str | int | None]
    ids: list[str | int | None] | None
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
        body = await read_json(request, svc.settings.max_body_bytes)
        texts = select(body, fmt.texts)
        if not texts:
            raise InvalidInput(f"no texts found in the request (format {fmt.name!r})")
        if not all(isinstance(t, str) and t for t in texts):
            raise InvalidInput(f"every selected text must be a non-empty string (format {fmt.name!r})")
        if len(texts) > svc.settings.max_inputs:
            raise InvalidInput(f"too many inputs: {len(texts)} (limit {svc.settings.max_inputs} per request)")
        ids = select(body, fmt.ids) if fmt.ids else list(range(len(texts)))
        if len(ids) != len(texts):
            raise InvalidInput(f"found {len(texts)} texts but {len(ids)} ids (format {fmt.name!r})")
        model = svc.resolve_model(None)
        result = await embed_texts(svc, texts, dimensions=opt_dimensions(body))
        items = [{"id": i, "index": n, "embedding": result.vectors[n]} for n, i in enumerate(ids)]
        values = {"model": model, "dimensions": int(result.vectors.shape[1]), "tokens": result.tokens}
        return json_response(fmt.render(fmt.response, values, items))

    return handler
