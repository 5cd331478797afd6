"""Ollama protocol (contract E): /api/embed, /api/embeddings (legacy), /api/tags, /api/show, /api/ps,
/api/version, /."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from aiohttp import web

from sqlembed import __version__
from sqlembed.api.embed import TRUNCATED_HEADER, EmbedOptions, embed_texts
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import parse, read_body
from sqlembed.api.schemas.ollama import (
    EmbedRequest,
    EmbedResponse,
    LegacyRequest,
    LegacyResponse,
    PsResponse,
    ShowRequest,
    ShowResponse,
    Tag,
    TagDetails,
    TagsResponse,
    VersionResponse,
)
from sqlembed.api.state import SERVICE, Service
from sqlembed.engine.pooling import check_dimensions
from sqlembed.engine.store import Manifest
from sqlembed.errors import InvalidInput

# Clients gate features on the Ollama version (/api/embed arrived in 0.3.0): report a modern one.
OLLAMA_COMPAT_VERSION = "0.12.0"


# What Ollama sends as expires_at for a model that never unloads (keep_alive < 0): now plus Go's
# largest time.Duration (api/types.go Duration.UnmarshalJSON: math.MaxInt64 ns, about 292 years;
# server/sched.go sets expiresAt = now + sessionDuration). `ollama ps` shows it as "Forever"
# (format.HumanTime: over 20 years ahead); a zero time would show "Stopping...". This service's
# model stays loaded for the life of the process, so that is the faithful value.
FOREVER = dt.timedelta(microseconds=(2**63 - 1) // 1000)


async def embed(request: web.Request) -> web.Response:
    t0 = time.perf_counter_ns()
    svc = request.app[SERVICE]
    req = parse(EmbedRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, "/api/embed")
    model, input_type = svc.resolve(req.model)
    if not req.input:
        # Ollama's "load the model" request (routes.go EmbedHandler: no input, 200, no embeddings);
        # the model is loaded here once ready, so only the name and dimensions are checked.
        check_dimensions(svc.engine()[2].dimensions, req.dimensions)
        empty: EmbedResponse = {"model": model, "embeddings": [], "total_duration": time.perf_counter_ns() - t0,
                                "load_duration": 0, "prompt_eval_count": 0}
        return json_response(empty, headers={TRUNCATED_HEADER: "0"})
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
    if not req.prompt:  # Ollama: "an empty request loads the model" (routes.go EmbeddingsHandler)
        svc.engine()
        empty: LegacyResponse = {"embedding": []}
        return json_response(empty)
    result = await embed_texts(svc, [req.prompt], EmbedOptions(input_type=input_type))
    body: LegacyResponse = {"embedding": result.vectors[0]}
    return json_response(body, headers=result.headers())


@dataclass(frozen=True)
class _Served:
    """What every Ollama model listing says about the loaded model (/api/tags, /api/show, /api/ps)."""

    manifest: Manifest
    size: int
    digest: str
    modified_at: str
    details: TagDetails


def _served(svc: Service) -> _Served:
    _, _, m = svc.engine()
    modified = dt.datetime.fromisoformat(m.created_at) if m.created_at else dt.datetime.now(dt.UTC)
    from sqlembed.engine.store import ModelStore

    graph = ModelStore(svc.settings.model_dir).model_file(m.id, m)
    weights = graph.with_suffix(".bin")  # an OpenVINO IR keeps its weights beside the .xml
    size = graph.stat().st_size + (weights.stat().st_size if graph.suffix == ".xml" and weights.is_file() else 0)
    fmt = "openvino" if m.runtime == "openvino" else "onnx"
    details: TagDetails = {
        "parent_model": "", "format": fmt, "family": m.family, "families": [m.family],
        "parameter_size": f"{m.parameters / 1e6:.1f}M", "quantization_level": m.precision.upper(),
        "embedding_length": m.dimensions, "pooling": m.pooling, "normalize": m.normalize,
        "prompts": m.prompts, "max_tokens": m.max_seq_length, "context_length": m.max_seq_length}
    return _Served(m, size, m.source_hash.removeprefix("sha256:"), modified.isoformat(), details)


async def tags(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    s = _served(svc)
    models: list[Tag] = [{"name": n, "model": n, "modified_at": s.modified_at, "size": s.size, "digest": s.digest,
                          "details": s.details} for n in svc.ollama_names()]
    body: TagsResponse = {"models": models}
    return json_response(body)


async def show(request: web.Request) -> web.Response:
    """Ollama's model card. Any name the embed routes serve is described, so a client that checks
    the model before embedding agrees with /api/embed: unknown names describe the loaded model
    unless SQLEMBED_STRICT_MODEL (then 404, as Ollama answers for a model it does not have)."""
    svc = request.app[SERVICE]
    req = parse(ShowRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, "/api/show")
    name = req.model or req.name
    if not name:
        raise InvalidInput("'model' is required", param="model")  # Ollama: 400 "model is required"
    svc.resolve(name)
    s = _served(svc)
    m, arch = s.manifest, s.manifest.family
    body: ShowResponse = {
        "license": "", "modelfile": "", "parameters": "", "template": "", "details": s.details,
        "model_info": {"general.architecture": arch, "general.name": m.name, "general.parameter_count": m.parameters,
                       f"{arch}.context_length": m.max_seq_length, f"{arch}.embedding_length": m.dimensions},
        "capabilities": ["embedding"], "modified_at": s.modified_at,
    }
    return json_response(body)


async def ps(request: web.Request) -> web.Response:
    """The loaded model, as `ollama ps` lists it: one entry, under the Ollama form of its id (a name
    /api/tags lists too). The model is in this process's memory (or the engine host's), never
    unloaded; size_vram is 0: no Ollama-style GPU offload to report."""
    svc = request.app[SERVICE]
    s = _served(svc)
    name = svc.tagged(s.manifest.id)
    body: PsResponse = {"models": [{
        "name": name, "model": name, "size": s.size, "digest": s.digest, "details": s.details,
        "expires_at": (dt.datetime.now(dt.UTC) + FOREVER).isoformat(), "size_vram": 0,
        "context_length": s.manifest.max_seq_length}]}
    return json_response(body)


async def version(request: web.Request) -> web.Response:
    body: VersionResponse = {"version": OLLAMA_COMPAT_VERSION, "sqlembed": __version__}
    return json_response(body)


async def root(request: web.Request) -> web.Response:
    # Ollama's liveness answer; health checkers compare the text.
    return web.Response(text="Ollama is running")
