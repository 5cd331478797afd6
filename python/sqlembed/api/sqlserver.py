"""The pull contract for ``sqlembed.embed_rows`` (sp_invoke_external_rest_endpoint): keyed rows in,
keyed vectors out. One bad row is reported in ``errors`` and never fails the batch, so the
procedure can apply every good vector and record the rest (docs/api.md)."""

from __future__ import annotations

from typing import Any

import orjson
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


async def embed(request: web.Request) -> web.StreamResponse:
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
    if "application/x-ndjson" in request.headers.get("Accept", ""):
        return await _stream(request, good_ids, texts, errors, dimensions)
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


# Rows per chunk when streaming: small enough that the first lines leave early, large enough
# that the batcher still forms full batches.
STREAM_CHUNK = 128


async def _stream(request: web.Request, ids: list[Any], texts: list[str], errors: list[dict[str, Any]],
                  dimensions: int | None) -> web.StreamResponse:
    """NDJSON for external clients (Accept: application/x-ndjson): one line per row as its chunk
    finishes, bad rows first, then {"done": true, ...}. SQL Server gets one JSON body instead."""
    svc = request.app[SERVICE]
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for e in errors:
        await resp.write(orjson.dumps(e) + b"\n")
    tokens = 0
    for start in range(0, len(texts), STREAM_CHUNK):
        result = await embed_texts(svc, texts[start : start + STREAM_CHUNK], dimensions=dimensions)
        tokens += result.tokens
        lines = [orjson.dumps({"id": ids[start + i], "embedding": v}, option=orjson.OPT_SERIALIZE_NUMPY)
                 for i, v in enumerate(result.vectors)]
        await resp.write(b"\n".join(lines) + b"\n")
    await resp.write(orjson.dumps({"done": True, "embedded": len(texts), "failed": len(errors),
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}) + b"\n")
    await resp.write_eof()
    return resp
