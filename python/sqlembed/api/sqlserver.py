"""The pull contract for ``sqlembed.embed_rows`` (sp_invoke_external_rest_endpoint): keyed rows in,
keyed vectors out. One bad row is reported in ``errors`` and never fails the batch, so the
procedure can apply every good vector and record the rest (docs/api.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sqlembed.api.embed import embed_texts
from sqlembed.api.request import log_unknown_keys, opt_dimensions, opt_str, read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput

_KEYS = frozenset({"model", "dimensions", "inputs"})
_SCALARS = (str, int, float, bool)


def _row_error(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "row must be an object with 'id' and 'text'"
    text = row.get("text")
    if text is None:
        return "'text' is missing or null"
    if not isinstance(text, str):
        return "'text' must be a string"
    if not text:
        return "'text' is an empty string"
    return None


async def embed(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    body = await read_json(request, svc.settings.max_body_bytes)
    log_unknown_keys(body, _KEYS, "/v1/sqlserver/embed")
    model = svc.resolve_model(opt_str(body, "model"))
    dimensions = opt_dimensions(body)
    rows = body.get("inputs")
    if not isinstance(rows, list):
        raise InvalidInput("'inputs' must be a list of {\"id\", \"text\"} objects", param="inputs")
    if not rows:
        raise InvalidInput("'inputs' must not be empty", param="inputs")
    if len(rows) > svc.settings.max_inputs:
        raise InvalidInput(f"too many inputs: {len(rows)} (limit {svc.settings.max_inputs} per request)",
                           param="inputs")
    good_ids: list[Any] = []
    texts: list[str] = []
    errors: list[dict[str, Any]] = []
    for row in rows:
        rid = row.get("id") if isinstance(row, dict) else None
        if rid is not None and not isinstance(rid, _SCALARS):
            errors.append({"id": None, "error": "'id' must be a JSON scalar (number or string)"})
            continue
        problem = _row_error(row)
        if problem is None and rid is None:
            problem = "'id' is missing or null"
        if problem is not None:
            errors.append({"id": rid, "error": problem})
            continue
        good_ids.append(rid)
        texts.append(row["text"])
    _, _, manifest = svc.engine()
    dims = dimensions or manifest.dimensions
    if not texts:
        return json_response({"model": model, "model_id": manifest.id, "dimensions": dims,
                              "embeddings": [], "errors": errors,
                              "usage": {"prompt_tokens": 0, "total_tokens": 0}})
    # Texts longer than the model's context are truncated, as AI_GENERATE_EMBEDDINGS callers expect.
    result = await embed_texts(svc, texts, dimensions=dimensions)
    return json_response({
        "model": model,
        "model_id": manifest.id,
        "dimensions": dims,
        "embeddings": [{"id": rid, "embedding": result.vectors[i]} for i, rid in enumerate(good_ids)],
        "errors": errors,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    })
