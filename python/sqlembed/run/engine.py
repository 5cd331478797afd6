"""Where the service-side processes open their engine: the default model built on a first start,
then ``open_embedder`` with this process's settings."""

from __future__ import annotations

import logging

from sqlembed.engine.backend import Backend
from sqlembed.engine.config import DEFAULT_MODEL
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.opener import open_embedder
from sqlembed.engine.store import ModelStore
from sqlembed.settings import Settings

log = logging.getLogger("sqlembed")


def ensure_model(settings: Settings) -> None:
    """Build the bundled default model when it is missing and ``build_on_start`` allows; any other
    missing model is reported by ``open_embedder`` (one message, with the command that builds it)."""
    store = ModelStore(settings.model_dir)
    mid = settings.served_model_id()
    if store.path(mid).exists():
        # Built, or there but unreadable: the opener reports the latter (with --force); it is
        # never silently rebuilt over, it may be a model someone is copying in.
        return
    if not (settings.build_on_start and settings.model == DEFAULT_MODEL):
        return
    from sqlembed.engine.build import build_model

    log.info("default model %s not found in %s: building it now (first start, about a minute)",
             mid, settings.model_dir)
    build_model(store, precision=settings.precision)
    log.info("built %s", mid)


def open_engine(settings: Settings, backend: Backend | None = None, *, build: bool = True) -> Embedder:
    """This process's engine; ``backend`` replaces the one the settings name (tests, benchmarks);
    ``build``: build the default model first where it is missing (``ensure_model``)."""
    if build:
        ensure_model(settings)
    return open_embedder(settings.engine_settings(), backend=backend)
