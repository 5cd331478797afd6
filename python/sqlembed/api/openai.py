"""OpenAI / Azure OpenAI protocol (contract F): /v1/embeddings, /v1/models, Azure deployment routes."""

from __future__ import annotations

import base64

from aiohttp import web

from sqlembed.api.embed import embed_texts
from sqlembed.api.request import log_unknown_keys, opt_dimensions, opt_str, parse_texts, read_json
from sqlembed.api.responses import json_response
from sqlembed.api.state import SERVICE
from sqlembed.errors import InvalidInput

_KEYS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})


async def embeddings(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    body = await read_json(request, svc.settings.max_body_bytes)
    log_unknown_keys(body, _KEYS, request.path if "deployment" not in request.match_info else "azure")
    # Azure: the deployment in the path names the model; a body 'model' (if any) wins.
    requested = opt_str(body, "model") or request.match_info.get("deployment")
    model = svc.resolve_model(requested)
    fmt = opt_str(body, "encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidInput("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    texts = parse_texts(body.get("input"), "input", svc.settings.max_inputs)
    result = await embed_texts(svc, texts, dimensions=opt_dimensions(body))
    vecs = result.vectors
    if fmt == "base64":
        # Contract F3: packed little-endian float32.
        le = vecs.astype("<f4", copy=False)
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(le[i].tobytes()).decode("ascii")}
            for i in range(len(le))
        ]
    else:
        data = [{"object": "embedding", "index": i, "embedding": vecs[i]} for i in range(len(vecs))]
    return json_response({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    })


async def models(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    _, _, m = svc.engine()
    created = int((svc.settings.model_dir / m.id / "manifest.json").stat().st_mtime)
    return json_response({
        "object": "list",
        "data": [{"id": n, "object": "model", "created": created, "owned_by": "sqlembed"}
                 for n in svc.model_names()],
    })
