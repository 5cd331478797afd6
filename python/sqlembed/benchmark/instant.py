"""A benchmark-only backend: correctly shaped, normalized vectors, instantly or at a set cost per
padded token, so the code around the engine can be measured at GPU-like engine speeds on a CPU.

Never selectable through settings or the CLI: benchmarks pass it to ``open_embedder(es,
backend=InstantBackend(...))``. The cost is spent in ``time.sleep``, which releases the GIL as a
GPU kernel launch-and-wait does; below about 0.1 ms the sleep's own granularity dominates, so
the figures at tiny costs are an upper bound of the engine's share.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt

A100_NS_PER_TOKEN = 115.0
"""all-MiniLM-L6-v2 fp16 on an A100, per padded token: published TensorRT BERT-base figures are
~8,500 sequences/s at 128 tokens (1.09 M tokens/s); MiniLM-L6 needs ~8x fewer FLOPs per token
(6 layers of width 384 vs 12 of 768), so ~8.7 M tokens/s, i.e. ~115 ns per token. A paper figure,
not a measurement: it sets the cost the benchmark backend spends."""


class InstantBackend:
    name = "benchmark-instant"

    def __init__(self, hidden: int, ns_per_token: float = 0.0, table: int = 1024) -> None:
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((table, hidden)).astype(np.float32)
        self._table = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        self.ns_per_token = ns_per_token
        self.batches = 0
        self.padded_tokens = 0

    def forward_pooled(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                       ) -> npt.NDArray[np.float32]:
        """[B, H] unit vectors, one per text (chosen by its first real token, so texts differ)."""
        b, t = input_ids.shape
        self.batches += 1
        self.padded_tokens += b * t
        if self.ns_per_token:
            time.sleep(self.ns_per_token * b * t * 1e-9)
        rows: npt.NDArray[np.float32] = self._table[input_ids[:, min(1, t - 1)] % len(self._table)]
        return rows

    def forward(self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.float32]:  # pragma: no cover - the embedder prefers forward_pooled
        raise NotImplementedError("InstantBackend pools on its own (forward_pooled)")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "ns_per_token": self.ns_per_token, "benchmark_only": True}

    def close(self) -> None:
        pass
