"""A real sqlembed server on a free loopback port, in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from aiohttp import web

from sqlembed.api.accesslog import AccessLogger
from sqlembed.engine.backend import Backend
from sqlembed.run.loop import new_event_loop
from sqlembed.run.service import service_app
from sqlembed.settings import Settings
from tests.support import leaks

CONFORMANCE: list[str] = []
"""Every response a test server sent that its own OpenAPI document does not describe (checked by
tests/zz_leaks/test_responses_conform.py at the end of the session)."""
CHECKED: list[int] = [0]
_VALIDATORS: dict[tuple[str, str, str], Any] = {}


def _validator(spec: dict[str, Any], path: str, method: str, status: str) -> Any:
    key = (path, method, status)
    if key not in _VALIDATORS:
        import jsonschema

        op = spec["paths"].get(path, {}).get(method)
        resp = None if op is None else op["responses"].get(status)
        schema = None if resp is None else resp.get("content", {}).get("application/json", {}).get("schema")
        _VALIDATORS[key] = (False if op is None or resp is None else
                            None if schema is None else
                            jsonschema.Draft202012Validator({**schema, "components": spec["components"]}))
    return _VALIDATORS[key]


@web.middleware
async def _conformance(request: web.Request, handler: Any) -> web.StreamResponse:
    """The served response, checked against the served spec (route template, method, status)."""
    from sqlembed.api.openapi import SPEC

    resp = await handler(request)
    resource = request.match_info.route.resource
    if resource is None or not isinstance(resp, web.Response) or resp.body is None:
        return resp
    path, method = resource.canonical, request.method.lower()
    if method == "head":
        return resp
    check = _validator(request.app[SPEC], path, method, str(resp.status))
    if check is False:
        CONFORMANCE.append(f"{request.method} {path} answered {resp.status}, which its spec does not list")
    elif check is not None and resp.content_type == "application/json":
        import json

        CHECKED[0] += 1
        errors = sorted(check.iter_errors(json.loads(bytes(resp.body))), key=str)  # type: ignore[arg-type]
        if errors:
            CONFORMANCE.append(f"{request.method} {path} {resp.status}: {errors[0].message[:300]}")
    return resp


@web.middleware
async def _capture_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Error bodies go to the leak scan (tests/zz_leaks)."""
    resp = await handler(request)
    if resp.status >= 400 and isinstance(resp, web.Response) and resp.body is not None:
        leaks.capture(bytes(resp.body).decode("utf-8", "replace"))  # type: ignore[arg-type]
    return resp


class ServerThread:
    def __init__(self, settings: Settings, backend: Backend | None = None,
                 ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1",
                 middlewares: tuple[Any, ...] = (), spark_factory: Any = None) -> None:
        self.settings = settings
        self.host = host
        self.middlewares = middlewares
        self.spark_factory = spark_factory
        self.backend = backend
        self.ssl_context = ssl_context
        self.port = 0
        # The loop `sqlembed serve` runs on (uvloop where installed): tests meet its transports and TLS.
        self._loop = new_event_loop(settings)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.app: web.Application | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._started.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        for key in self.settings.api_key_list():
            leaks.register(key)
        for url in self.settings.database_urls().values():
            leaks.register_url(url)
        self.app = service_app(self.settings, self.backend, spark_factory=self.spark_factory)
        self.app.middlewares.extend(self.middlewares)  # test-only observers, e.g. request capture
        self.app.middlewares.insert(0, _capture_errors)  # outermost: sees the formatted error bodies
        self.app.middlewares.insert(0, _conformance)
        runner = web.AppRunner(self.app, access_log_class=AccessLogger)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self, ready_timeout: float = 120.0, verify: Any = True) -> ServerThread:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(verify=verify) as c:
            while time.monotonic() < deadline:
                r = c.get(self.url + "/readyz")
                if r.status_code == 200:
                    return self
                if r.json().get("status") == "failed":
                    raise RuntimeError(f"server failed to load: {r.json()}")
                time.sleep(0.05)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@contextlib.contextmanager
def running(settings: Settings, **kw: Any) -> Iterator[ServerThread]:
    verify = kw.pop("verify", True)
    srv = ServerThread(settings, **kw).start(verify=verify)
    try:
        yield srv
    finally:
        srv.stop()


def with_settings(base: Settings, **update: Any) -> Settings:
    """A validated copy (``model_copy(update=...)`` skips validation, so secrets stay plain str)."""
    return Settings(**{**base.model_dump(), **update})
