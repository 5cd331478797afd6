"""Ollama protocol (contract E): /api/embed, /api/embeddings (legacy), /api/tags, /api/version, /."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from sqlembed import __version__
from sqlembed.api.embed import embed_texts
from sqlembed.api.request import log_unknown_keys, opt_bool, opt_dimensions, opt_str, parse_texts, read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput

# Clients gate features on the Ollama version (/api/embed arrived in 0.3.0): report a modern one.
OLLAMA_COMPAT_VERSION = "0.12.0"

_EMBED_KEYS = frozenset({"model", "input", "truncate", "dimensions", "keep_alive", "options"})
_LEGACY_KEYS = frozenset({"model", "prompt", "keep_alive", "options"})


async def embed(request: web.Request) -> web.Response:
    t0 = time.perf_counter_ns()
    svc = request.app[SERVICE]
    body = await read_json(request, svc.settings.max_body_bytes)
    log_unknown_keys(body, _EMBED_KEYS, "/api/embed")
    model = svc.resolve_model(opt_str(body, "model"))
    texts = parse_texts(body.get("input"), "input", svc.settings.max_inputs)
    result = await embed_texts(
        svc, texts, truncate=opt_bool(body, "truncate", True), dimensions=opt_dimensions(body)
    )
    return json_response({
        "model": model,
        "embeddings": result.vectors,
        "total_duration": time.perf_counter_ns() - t0,
        "load_duration": 0,
        "prompt_eval_count": result.tokens,
    })


async def embeddings_legacy(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    body = await read_json(request, svc.settings.max_body_bytes)
    log_unknown_keys(body, _LEGACY_KEYS, "/api/embeddings")
    svc.resolve_model(opt_str(body, "model"))
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("'prompt' is required and must be a string", param="prompt")
    texts = parse_texts(prompt, "prompt", 1)
    result = await embed_texts(svc, texts)
    return json_response({"embedding": result.vectors[0]})


async def tags(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    _, _, m = svc.engine()
    modified = dt.datetime.fromisoformat(m.created_at) if m.created_at else dt.datetime.now(dt.UTC)
    size = (svc.settings.model_dir / m.id / "model.onnx").stat().st_size
    entry = {
        "modified_at": modified.isoformat(),
        "size": size,
        "digest": m.source_hash.removeprefix("sha256:"),
        "details": {
            "parent_model": "",
            "format": "onnx",
            "family": m.family,
            "families": [m.family],
            "parameter_size": f"{m.parameters / 1e6:.1f}M",
            "quantization_level": m.precision.upper(),
        },
    }
    return json_response({"models": [{"name": n, "model": n, **entry} for n in svc.model_names()]})


async def version(request: web.Request) -> web.Response:
    return json_response({"version": OLLAMA_COMPAT_VERSION, "sqlembed": __version__})


async def root(request: web.Request) -> web.Response:
    # Ollama's liveness answer; health checkers compare the text.
    return web.Response(text="Ollama is running")
