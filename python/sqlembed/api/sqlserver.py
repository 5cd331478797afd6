"""The pull contract for ``sqlembed.embed_rows`` (sp_invoke_external_rest_endpoint): keyed rows in,
keyed vectors out. One bad row is reported in ``errors`` and never fails the batch, so the
procedure can apply every good vector and record the rest (docs/api.md)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sqlembed.api.embed import EmbedOptions, embed_texts
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import parse, read_body
from sqlembed.api.schemas.sqlserver import EmbedRowsRequest, EmbedRowsResponse, RowError
from sqlembed.api.state import SERVICE

_SCALARS = (str, int, float, bool)


def _row_error(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "row must be an object with 'id' and 'text'"
    rid, text = row.get("id"), row.get("text")
    if rid is not None and not isinstance(rid, _SCALARS):
        return "'id' must be a JSON scalar (number or string)"
    if text is None:
        return "'text' is missing or null"
    if not isinstance(text, str):
        return "'text' must be a string"
    if not text:
        return "'text' is an empty string"
    if rid is None:
        return "'id' is missing or null"
    return None


def split_rows(rows: list[Any]) -> tuple[list[Any], list[str], list[RowError]]:
    """(ids, texts) of the good rows and one error per bad row, in input order."""
    ids: list[Any] = []
    texts: list[str] = []
    errors: list[RowError] = []
    for row in rows:
        problem = _row_error(row)
        if problem is not None:
            rid = row.get("id") if isinstance(row, dict) else None
            errors.append({"id": rid if isinstance(rid, _SCALARS) else None, "error": problem})
            continue
        ids.append(row["id"])
        texts.append(row["text"])
    return ids, texts, errors


async def embed(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICE]
    req = parse(EmbedRowsRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits,
                "/v1/sqlserver/embed")
    model, input_type = svc.resolve(req.model)
    options = EmbedOptions.of(req, input_type)
    ids, texts, errors = split_rows(req.inputs)
    _, _, manifest = svc.engine()
    dims = req.dimensions or manifest.dimensions
    if "application/x-ndjson" in request.headers.get("Accept", ""):
        return await _stream(request, ids, texts, errors, options)
    if not texts:
        empty: EmbedRowsResponse = {"model": model, "model_id": manifest.id, "dimensions": dims, "embeddings": [],
                                    "errors": errors, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        return json_response(empty)
    # Texts longer than the model's context are truncated, as AI_GENERATE_EMBEDDINGS callers expect.
    result = await embed_texts(svc, texts, options)
    body: EmbedRowsResponse = {
        "model": model, "model_id": manifest.id, "dimensions": dims,
        "embeddings": [{"id": rid, "embedding": result.vectors[i]} for i, rid in enumerate(ids)],
        "errors": errors,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }
    return json_response(body, headers=result.headers())


# Rows per chunk when streaming: small enough that the first lines leave early, large enough
# that the batcher still forms full batches.
STREAM_CHUNK = 128


async def _stream(request: web.Request, ids: list[Any], texts: list[str], errors: list[RowError],
                  options: EmbedOptions) -> web.StreamResponse:
    """NDJSON for external clients (Accept: application/x-ndjson): one line per row as its chunk
    finishes, bad rows first, then {"done": true, ...}. SQL Server gets one JSON body instead."""
    svc = request.app[SERVICE]
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for e in errors:
        await resp.write(orjson.dumps(e) + b"\n")
    tokens = 0
    for start in range(0, len(texts), STREAM_CHUNK):
        result = await embed_texts(svc, texts[start : start + STREAM_CHUNK], options)
        tokens += result.tokens
        lines = [orjson.dumps({"id": ids[start + i], "embedding": v}, option=orjson.OPT_SERIALIZE_NUMPY)
                 for i, v in enumerate(result.vectors)]
        await resp.write(b"\n".join(lines) + b"\n")
    await resp.write(orjson.dumps({"done": True, "embedded": len(texts), "failed": len(errors),
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}) + b"\n")
    await resp.write_eof()
    return resp
