"""JSON responses: orjson serializes numpy rows directly (float32 shortest form), fast and exact."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body, option=_OPTS), status=status, content_type="application/json",
                        headers=headers)
