"""The one path every protocol adapter takes: validate -> tokenize -> batcher -> dimensions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sqlembed.api.state import Service
from sqlembed.engine.pooling import check_dimensions, truncate_dimensions

# Tokenizing a few texts inline is cheaper than a thread hop; big requests go to a thread so
# the event loop keeps answering other clients.
_INLINE_TOKENIZE_TEXTS = 16


@dataclass(frozen=True)
class EmbedResult:
    vectors: npt.NDArray[np.float32]
    tokens: int


async def embed_texts(
    service: Service, texts: list[str], *, truncate: bool = True, dimensions: int | None = None
) -> EmbedResult:
    embedder, batcher, manifest = service.engine()
    check_dimensions(manifest.dimensions, dimensions)  # reject before doing the work
    if len(texts) <= _INLINE_TOKENIZE_TEXTS:
        encoded = embedder.tokenize(texts, truncate=truncate)
    else:
        encoded = await asyncio.to_thread(embedder.tokenize, texts, truncate=truncate)
    vectors = await batcher.embed(encoded)
    vectors = truncate_dimensions(vectors, dimensions, normalize=manifest.normalize)
    return EmbedResult(vectors, sum(len(t) for t in encoded))
