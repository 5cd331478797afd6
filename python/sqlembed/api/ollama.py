"""Ollama protocol (contract E): /api/embed, /api/embeddings (legacy), /api/tags, /api/version, /."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from sqlembed import __version__
from sqlembed.api.embed import EmbedOptions, embed_texts
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import parse, read_body
from sqlembed.api.schemas.ollama import (
    EmbedRequest,
    EmbedResponse,
    LegacyRequest,
    LegacyResponse,
    Tag,
    TagsResponse,
    VersionResponse,
)
from sqlembed.api.state import SERVICE

# Clients gate features on the Ollama version (/api/embed arrived in 0.3.0): report a modern one.
OLLAMA_COMPAT_VERSION = "0.12.0"


async def embed(request: web.Request) -> web.Response:
    t0 = time.perf_counter_ns()
    svc = request.app[SERVICE]
    req = parse(EmbedRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, "/api/embed")
    model, input_type = svc.resolve(req.model)
    result = await embed_texts(svc, req.input, EmbedOptions.of(req, input_type, truncate=req.truncate))
    body: EmbedResponse = {
        "model": model,
        "embeddings": result.vectors,
        "total_duration": time.perf_counter_ns() - t0,
        "load_duration": 0,
        "prompt_eval_count": result.tokens,
    }
    return json_response(body, headers=result.headers())


async def embeddings_legacy(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    req = parse(LegacyRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, "/api/embeddings")
    _, input_type = svc.resolve(req.model)
    result = await embed_texts(svc, [req.prompt], EmbedOptions(input_type=input_type))
    body: LegacyResponse = {"embedding": result.vectors[0]}
    return json_response(body, headers=result.headers())


async def tags(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    _, _, m = svc.engine()
    modified = dt.datetime.fromisoformat(m.created_at) if m.created_at else dt.datetime.now(dt.UTC)
    from sqlembed.engine.store import ModelStore

    graph = ModelStore(svc.settings.model_dir).model_file(m.id, m)
    weights = graph.with_suffix(".bin")  # an OpenVINO IR keeps its weights beside the .xml
    size = graph.stat().st_size + (weights.stat().st_size if graph.suffix == ".xml" and weights.is_file() else 0)
    fmt = "openvino" if m.runtime == "openvino" else "onnx"
    models: list[Tag] = [{
        "name": n, "model": n, "modified_at": modified.isoformat(), "size": size,
        "digest": m.source_hash.removeprefix("sha256:"),
        "details": {"parent_model": "", "format": fmt, "family": m.family, "families": [m.family],
                    "parameter_size": f"{m.parameters / 1e6:.1f}M", "quantization_level": m.precision.upper(),
                    "embedding_length": m.dimensions, "pooling": m.pooling, "normalize": m.normalize,
                    "prompts": m.prompts, "max_tokens": m.max_seq_length},
    } for n in svc.model_names()]
    body: TagsResponse = {"models": models}
    return json_response(body)


async def version(request: web.Request) -> web.Response:
    body: VersionResponse = {"version": OLLAMA_COMPAT_VERSION, "sqlembed": __version__}
    return json_response(body)


async def root(request: web.Request) -> web.Response:
    # Ollama's liveness answer; health checkers compare the text.
    return web.Response(text="Ollama is running")
