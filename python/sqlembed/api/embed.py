"""The one path every protocol adapter takes: tokenize (prompt, truncation) -> batcher -> dimensions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from sqlembed.api.state import Service
from sqlembed.engine.config import Direction
from sqlembed.engine.embedder import mean_of_chunks
from sqlembed.engine.pooling import check_dimensions, truncate_dimensions

# Tokenizing a few texts inline is cheaper than a thread hop; big requests go to a thread so
# the event loop keeps answering other clients.
_INLINE_TOKENIZE_TEXTS = 16
TRUNCATED_HEADER = "x-sqlembed-truncated-tokens"


@dataclass(frozen=True)
class EmbedOptions:
    truncate: bool = True
    dimensions: int | None = None
    input_type: str | None = None
    direction: Direction | None = None
    """None: the service's SQLEMBED_TRUNCATION_DIRECTION."""

    @classmethod
    def of(cls, req: Any, input_type: str | None = None, truncate: bool = True) -> EmbedOptions:
        """From a request model: its fields, the input type its model name implies as a fallback."""
        return cls(truncate=truncate, dimensions=getattr(req, "dimensions", None),
                   input_type=getattr(req, "input_type", None) or input_type,
                   direction=getattr(req, "truncation_direction", None))


@dataclass(frozen=True)
class EmbedResult:
    vectors: npt.NDArray[np.float32]
    tokens: int
    dropped: int = 0

    def headers(self) -> dict[str, str]:
        return {TRUNCATED_HEADER: str(self.dropped)}


async def embed_texts(service: Service, texts: list[str], options: EmbedOptions = EmbedOptions()) -> EmbedResult:
    embedder, batcher, manifest = service.engine()
    check_dimensions(manifest.dimensions, options.dimensions)  # reject before doing the work
    if options.truncate and service.settings.long_text == "chunk-mean":
        return await _embed_chunk_mean(service, texts, options)
    direction = options.direction or service.settings.truncation_direction
    kw: dict[str, Any] = {"truncate": options.truncate, "input_type": options.input_type, "direction": direction}
    if len(texts) <= _INLINE_TOKENIZE_TEXTS:
        encoded = embedder.encode(texts, **kw)
    else:
        encoded = await asyncio.to_thread(embedder.encode, texts, **kw)
    vectors = await batcher.embed(encoded.ids)
    vectors = truncate_dimensions(vectors, options.dimensions, normalize=manifest.normalize)
    return EmbedResult(vectors, sum(len(t) for t in encoded.ids), encoded.dropped)


async def _embed_chunk_mean(service: Service, texts: list[str], options: EmbedOptions) -> EmbedResult:
    """SQLEMBED_LONG_TEXT=chunk-mean: an over-long text is the normalized mean of its chunks'
    vectors instead of its first tokens' vector. Every request shape takes this path, so a text
    has one vector whether it came alone (AI_GENERATE_EMBEDDINGS) or in a batch. Nothing is cut:
    the truncated-tokens header says 0."""
    embedder, batcher, manifest = service.engine()
    encoded, counts = await asyncio.to_thread(embedder.encode_chunked, texts, input_type=options.input_type)
    vectors = mean_of_chunks(await batcher.embed(encoded.ids), counts, [len(t) for t in encoded.ids])
    vectors = truncate_dimensions(vectors, options.dimensions, normalize=manifest.normalize)
    return EmbedResult(vectors, sum(len(t) for t in encoded.ids), 0)


def with_headers(resp: web.StreamResponse, result: EmbedResult) -> web.StreamResponse:
    resp.headers.update(result.headers())
    return resp
