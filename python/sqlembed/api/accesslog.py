"""Access log without query strings: a query may carry an API key (HTTPEndpointQueryString)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %s %.1fms rid=%s', request.remote, request.method, request.path,
            response.status, response.body_length, time * 1000, response.headers.get("x-request-id", "-"),
        )
