"""Tokenize -> plan batches by token count -> backend.forward -> pool -> normalize."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sqlembed.engine.backend import Backend, length_multiple
from sqlembed.engine.config import Direction
from sqlembed.engine.planner import plan_batches
from sqlembed.engine.pooling import l2_normalize, pool
from sqlembed.engine.store import Manifest
from sqlembed.engine.tokenizer import Encoded, TokenIds, Tokenizer

F32 = npt.NDArray[np.float32]


class Embedder:
    """Synchronous engine; thread-safe as long as the backend is (ONNX Runtime sessions are).

    Built by ``engine.opener.open_embedder``.
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: Tokenizer,
        manifest: Manifest,
        *,
        max_batch_items: int = 32,
        max_batch_tokens: int = 4096,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.dimensions = manifest.dimensions
        self.max_batch_items = max_batch_items
        self.max_batch_tokens = max_batch_tokens
        self.length_multiple = length_multiple(backend)

    def padded_width(self, longest: int) -> int:
        """The width a batch whose longest member has ``longest`` tokens runs at: rounded up to the
        backend's multiple, so far fewer distinct shapes reach it, capped at the model's length."""
        m = self.length_multiple
        if m == 1:
            return longest
        return max(longest, min(-(-longest // m) * m, self.tokenizer.max_length))

    def encode(self, texts: Sequence[str], *, truncate: bool = True, input_type: str | None = None,
               direction: Direction = "right") -> Encoded:
        """Token ids with the model's prompt for ``input_type`` (query, passage) prepended."""
        return self.tokenizer.encode(texts, truncate=truncate, prompt=self.manifest.prompt_for(input_type),
                                     direction=direction)

    def encode_chunked(self, texts: Sequence[str], *, input_type: str | None = None) -> tuple[Encoded, list[int]]:
        """Every text as token ids, an over-long one as its chunks (no overlap, cut where
        engine/chunking.py cuts); also how many entries each text has, in order."""
        prompt = self.manifest.prompt_for(input_type)
        first = self.tokenizer.encode(texts, prompt=prompt)
        if not first.truncated:
            return Encoded(first.ids), [1] * len(texts)
        budget = self.tokenizer.max_length - 2 - self.tokenizer.prompt_tokens(prompt)
        out, counts = Encoded([]), []
        for text, ids in zip(texts, first.ids, strict=True):
            if len(ids) < self.tokenizer.max_length:
                out.ids.append(ids)
                counts.append(1)
                continue
            pieces = [c.text for c in self.tokenizer.chunks(text, budget)] or [text]
            out.ids.extend(self.tokenizer.encode(pieces, prompt=prompt).ids)
            counts.append(len(pieces))
        return out, counts

    def tokenize(self, texts: Sequence[str], *, truncate: bool = True, input_type: str | None = None,
                 direction: Direction = "right") -> list[TokenIds]:
        return self.encode(texts, truncate=truncate, input_type=input_type, direction=direction).ids

    def embed_tokens(self, batch: Sequence[TokenIds]) -> F32:
        """One forward pass over one batch, padded to ``padded_width`` of its longest member."""
        lengths = [len(t) for t in batch]
        width = self.padded_width(max(lengths))
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, (tokens, n) in enumerate(zip(batch, lengths, strict=True)):
            ids[row, :n] = tokens
            mask[row, :n] = 1
        pooled_on_device = getattr(self.backend, "forward_pooled", None)
        if pooled_on_device is not None:
            # GPU backends pool and normalize on the device: only [B, H] crosses back.
            return np.asarray(pooled_on_device(ids, mask), dtype=np.float32)
        hidden = self.backend.forward(ids, mask)
        pooled = pool(hidden, mask, self.manifest.pooling)
        return l2_normalize(pooled) if self.manifest.normalize else pooled

    def embed_encoded(self, encoded: Sequence[TokenIds]) -> F32:
        out = np.empty((len(encoded), self.dimensions), dtype=np.float32)
        plan = plan_batches([self.padded_width(len(t)) for t in encoded], self.max_batch_items,
                            self.max_batch_tokens)
        for idx in plan:
            out[idx] = self.embed_tokens([encoded[i] for i in idx])
        return out

    def embed(self, texts: Sequence[str], *, truncate: bool = True, input_type: str | None = None,
              direction: Direction = "right") -> F32:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        return self.embed_encoded(self.tokenize(texts, truncate=truncate, input_type=input_type, direction=direction))

    def warmup(self) -> None:
        # First runs allocate arenas and pick kernels; do it before /readyz says ready.
        self.embed(["warm up", "a somewhat longer sentence to warm up the kernels for longer inputs " * 4])
        if self.length_multiple > 1:
            # A backend that compiles kernels per shape (OpenVINO: ~40 ms per new int8 shape, measured)
            # pays for each width once, here, and not in the first single-text requests.
            filler = self.tokenizer.encode(["warm up"]).ids[0]
            for width in range(self.length_multiple, self.tokenizer.max_length + 1, self.length_multiple):
                self.embed_tokens([np.resize(filler, width)])

    def close(self) -> None:
        self.backend.close()



def mean_of_chunks(vectors: F32, counts: Sequence[int], weights: Sequence[int]) -> F32:
    """One vector per text from its chunks' vectors (``counts`` consecutive rows each): their mean
    weighted by tokens (a short last chunk counts for what it holds), L2-normalized."""
    if all(n == 1 for n in counts):
        return vectors
    out = np.empty((len(counts), vectors.shape[1]), dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    start = 0
    for i, n in enumerate(counts):
        rows = slice(start, start + n)
        out[i] = (vectors[rows] * w[rows, None]).sum(axis=0) / w[rows].sum()
        start += n
    return l2_normalize(out)
