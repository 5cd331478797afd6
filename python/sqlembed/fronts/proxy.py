"""A front's proxy to the engine host's own app: the routes that hold state (fronts/front.PROXIED)
are forwarded over the host's private Unix socket as they came."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from sqlembed.errors import NotReady


class HostProxy:
    _HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, path: Path, request_id: Any) -> None:
        """``request_id``: the request key under which the error middleware keeps the request's id,
        passed on so that the host logs the same id."""
        self.path = path
        self.request_id = request_id
        self.session: Any = None

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.path)),
                                             timeout=aiohttp.ClientTimeout(total=300), auto_decompress=False)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        headers = {k: v for k, v in request.headers.items() if k.lower() not in self._HOP}
        headers["x-request-id"] = request.get(self.request_id, headers.get("x-request-id", ""))
        try:
            async with self.session.request(request.method, "http://engine-host" + request.path_qs,
                                            headers=headers, data=await request.read()) as r:
                body = await r.read()
                keep = {k: v for k, v in r.headers.items() if k.lower() not in self._HOP}
                return web.Response(body=body, status=r.status, headers=keep)
        except aiohttp.ClientError:
            raise NotReady("the engine host is not reachable; retry shortly") from None
