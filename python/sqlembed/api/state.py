"""What the app holds: settings, engine, batcher, metrics. Typed keys for ``app[...]``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sqlembed.api.metrics import Metrics
from sqlembed.api.schemas.common import Limits
from sqlembed.engine.batcher import Batcher
from sqlembed.engine.embedder import Embedder
from sqlembed.engine.placement import WAITING, Placement
from sqlembed.engine.store import Manifest
from sqlembed.errors import ModelNotFound, NotReady
from sqlembed.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    manifest: Manifest | None = None
    embedder: Embedder | None = None
    batcher: Batcher | None = None
    placement: Placement | None = None
    load_error: str | None = None
    _warned_models: set[str] = field(default_factory=set)
    limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        self.limits = Limits(max_inputs=self.settings.max_inputs, max_body_bytes=self.settings.max_body_bytes)

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    def state(self, placement: Mapping[str, Any]) -> str:
        """What /readyz and /v1/status report: failed, loading, ``WAITING`` (placement=spark with no
        executor: requests would only wait) or ready. ``placement``: the placement's ``describe()``."""
        if self.load_error is not None:
            return "failed"
        if not self.ready or self.manifest is None:
            return "loading"
        return WAITING if placement.get("active") == WAITING else "ready"

    def engine(self) -> tuple[Embedder, Batcher, Manifest]:
        if self.embedder is None or self.batcher is None or self.manifest is None:
            raise NotReady("the model is still loading; retry shortly")
        return self.embedder, self.batcher, self.manifest

    def model_names(self) -> list[str]:
        names = [] if self.manifest is None else [self.manifest.id, self.manifest.name]
        names += self.settings.alias_list()
        return list(dict.fromkeys(names))

    # Ollama's names: a name without a tag is the name with the tag "latest" (`x` and `x:latest`
    # are one model; `ollama list` shows `x:latest`). The one place that rule lives.
    LATEST = ":latest"

    @classmethod
    def tagged(cls, name: str) -> str:
        """Ollama's full name: ``x`` -> ``x:latest``; a tagged name (``x:l6-v2``) as it is. A tag
        follows the last '/' (``host:port/x`` has none)."""
        return name if ":" in name.rpartition("/")[2] else name + cls.LATEST

    @classmethod
    def untagged(cls, name: str) -> str:
        """``x:latest`` -> ``x`` (where ``x`` has no tag of its own); any other name as it is."""
        base = name.removesuffix(cls.LATEST)
        return base if base != name and cls.tagged(base) == name else name

    def ollama_names(self) -> list[str]:
        """The served names as /api/tags lists them: each name, and after an untagged one its
        ``:latest`` form (the name Ollama clients show and validate against)."""
        return list(dict.fromkeys(n for name in self.model_names() for n in (name, self.tagged(name))))

    def serves(self, name: str) -> bool:
        """A served name, with or without Ollama's default tag."""
        return self.untagged(name) in self.model_names()

    def resolve_model(self, requested: str | None) -> str:
        """The name to echo back. Unknown names are served by the loaded model unless strict."""
        return self.resolve(requested)[0]

    def resolve(self, requested: str | None) -> tuple[str, str | None]:
        """(name to echo, input type the name implies). ``<model>-query`` and ``<model>-passage``
        (or ``-document``) choose the model's prompt, because AI_GENERATE_EMBEDDINGS can only pass
        a model name (and PARAMETERS) per external model. Ollama's ``:latest`` goes on either side
        of the suffix: ``x-query:latest`` (the tagged name of ``x-query``) and ``x:latest-query``
        (the suffix on the tagged name) are ``x-query``."""
        if requested:
            base, _, suffix = self.untagged(requested).rpartition("-")
            if suffix in ("query", "passage", "document") and self.serves(base):
                return requested, suffix
        return self._resolve_name(requested), None

    def _resolve_name(self, requested: str | None) -> str:
        _, _, manifest = self.engine()
        if requested is None or self.serves(requested):
            return requested or manifest.name
        if self.settings.strict_model:
            raise ModelNotFound(f"model '{requested}' not found; this server serves '{manifest.id}'",
                                param="model")
        if requested not in self._warned_models and len(self._warned_models) < 1000:
            self._warned_models.add(requested)
            log.warning("unknown model name %r served by %s (set SQLEMBED_STRICT_MODEL=true to refuse)",
                        requested, manifest.id)
        return requested


SERVICE = web.AppKey("service", Service)
