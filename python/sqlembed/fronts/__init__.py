"""``serve --workers N``: front processes on one port, one engine host (fronts/host.py)."""

from __future__ import annotations

from typing import Any


def serve_with_fronts(settings: Any, embedder: Any = None) -> None:
    from sqlembed.fronts.host import serve_with_fronts as serve

    serve(settings, embedder)
