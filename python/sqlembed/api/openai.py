"""OpenAI / Azure OpenAI protocol (contract F): /v1/embeddings, /v1/models, Azure deployment routes."""

from __future__ import annotations

import base64

from aiohttp import web

from sqlembed.api.embed import EmbedOptions, embed_texts
from sqlembed.api.responses import json_response
from sqlembed.api.schemas.common import parse, read_body
from sqlembed.api.schemas.openai import (
    EmbeddingObject,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelDetails,
    ModelList,
)
from sqlembed.api.state import SERVICE


async def embeddings(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    route = request.path if "deployment" not in request.match_info else "azure"
    req = parse(EmbeddingsRequest, await read_body(request, svc.limits.max_body_bytes), svc.limits, route)
    # Azure: the deployment in the path names the model; a body 'model' (if any) wins.
    model, input_type = svc.resolve(req.model or request.match_info.get("deployment"))
    result = await embed_texts(svc, req.input, EmbedOptions.of(req, input_type))
    vecs = result.vectors
    data: list[EmbeddingObject]
    if req.encoding_format == "base64":
        # Contract F3: packed little-endian float32.
        le = vecs.astype("<f4", copy=False)
        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(le[i].tobytes()).decode("ascii")}
                for i in range(len(le))]
    else:
        data = [{"object": "embedding", "index": i, "embedding": vecs[i]} for i in range(len(vecs))]
    body: EmbeddingsResponse = {"object": "list", "data": data, "model": model,
                                "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens}}
    return json_response(body, headers=result.headers())


async def models(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    _, _, m = svc.engine()
    created = int((svc.settings.model_dir / m.id / "manifest.json").stat().st_mtime)
    details: ModelDetails = {"dimensions": m.dimensions, "pooling": m.pooling, "normalize": m.normalize,
                             "precision": m.precision, "prompts": m.prompts, "max_tokens": m.max_seq_length}
    body: ModelList = {"object": "list", "data": [
        {"id": n, "object": "model", "created": created, "owned_by": "sqlembed", "sqlembed": details}
        for n in svc.model_names()]}
    return json_response(body)
