"""A front process of ``serve --workers N`` (started by run/host.py):
``python -m sqlembed.run.front RUN_DIR``, settings and run key on stdin.

HTTP, TLS, auth, JSON and tokenization here; vectors from the engine host's batcher over the
engine link; the routes that hold state (fronts/front.PROXIED) forwarded to the host's app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from sqlembed.api.app import create_app
from sqlembed.api.errors import REQUEST_ID
from sqlembed.api.state import Service
from sqlembed.engine.opener import open_embedder
from sqlembed.fronts.front import PROXIED, EngineLink, RemoteBackend, RemoteBatcher
from sqlembed.fronts.proxy import HostProxy
from sqlembed.settings import Settings


def front_app(settings: Settings, run_dir: Path, key: bytes) -> web.Application:
    svc = Service(settings)
    proxy = HostProxy(run_dir / "app.sock", REQUEST_ID)
    link = EngineLink(run_dir / "engine.sock", key)
    app = create_app(svc, proxy=proxy.handle, proxied=PROXIED)

    async def link_ctx(app: web.Application) -> AsyncIterator[None]:
        # The tokenizer and manifest only: the model lives in the engine host.
        embedder = await asyncio.to_thread(open_embedder, settings.engine_settings(), RemoteBackend())
        svc.manifest = embedder.manifest
        svc.embedder = embedder
        svc.batcher = RemoteBatcher(link, embedder.dimensions)  # type: ignore[assignment]
        await proxy.open()
        yield
        await link.close()
        await proxy.close()

    app.cleanup_ctx.append(link_ctx)
    return app


def main(run_dir: Path) -> None:
    from sqlembed.api.accesslog import AccessLogger
    from sqlembed.run.loop import new_event_loop
    from sqlembed.run.service import check_tls

    data = json.loads(sys.stdin.readline())
    settings = Settings(**data["settings"])
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s[front %(process)d]: %(message)s")
    app = front_app(settings, run_dir, bytes.fromhex(data["key"]))
    web.run_app(app, host=settings.host, port=settings.port, reuse_port=True, ssl_context=check_tls(settings),
                access_log_class=AccessLogger, print=None, loop=new_event_loop(settings))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
