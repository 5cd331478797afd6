"""API keys (contract A6): ``api-key``, ``Authorization: Bearer``, a header named ``Bearer``,
or an ``api-key`` query parameter (HTTPEndpointQueryString credentials)."""

from __future__ import annotations

import hmac

from aiohttp import web

from sqlembed.api.errors import Handler
from sqlembed.errors import Unauthorized

OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})


def presented_key(request: web.Request) -> str | None:
    h = request.headers
    if "api-key" in h:
        return h["api-key"].strip()
    auth = h.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if "Bearer" in h:  # [CEM]'s example credential {"Bearer": "KEY"} sends this header literally
        return h["Bearer"].strip()
    return request.query.get("api-key")


def key_matches(candidate: str, keys: list[bytes]) -> bool:
    c = candidate.encode()
    # Compare with every key, no early exit: timing must not tell which key is close.
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(c, k)
    return ok


def make_auth_middleware(keys: list[str]) -> web.middleware:  # type: ignore[valid-type]
    encoded = [k.encode() for k in keys]

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            key = presented_key(request)
            if key is None:
                raise Unauthorized("missing API key: send 'api-key: KEY' or 'Authorization: Bearer KEY'")
            if not key_matches(key, encoded):
                raise Unauthorized("invalid API key")
        return await handler(request)

    return auth_middleware
