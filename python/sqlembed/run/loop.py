"""The event loop a server process runs on.

uvloop where it is installed (the ``server`` extra, not on Windows): its accept, transport and
TLS layers are compiled, so a request and, above all, a new TLS connection cost the host less CPU
than on asyncio's pure-Python TLS protocol (docs/benchmarks.md, "Row by row"). aiohttp runs on
either unchanged; ``SQLEMBED_EVENT_LOOP=asyncio`` opts out without uninstalling anything.
"""

from __future__ import annotations

import asyncio
import importlib.util

from sqlembed.errors import SqlembedError
from sqlembed.settings import Settings


def new_event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    choice = settings.event_loop
    if choice == "asyncio" or (choice == "auto" and importlib.util.find_spec("uvloop") is None):
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError as exc:
        raise SqlembedError("SQLEMBED_EVENT_LOOP=uvloop but uvloop is not installed: pip install uvloop "
                            "(part of the server extra except on Windows)") from exc
    return uvloop.new_event_loop()


def describe(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop 0.23.0`` or ``asyncio``: for the start-up log line."""
    if type(loop).__module__.split(".")[0] == "uvloop":
        from importlib.metadata import version

        return f"uvloop {version('uvloop')}"
    return "asyncio"
