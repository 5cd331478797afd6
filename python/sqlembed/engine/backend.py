"""The contract every inference backend implements (ONNX Runtime CPU here; GPU backends later)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class Backend(Protocol):
    """Runs the transformer: padded ids + mask in, token embeddings ``[B, L, H]`` out.

    Pooling and normalization live in ``engine.pooling`` so every backend shares one implementation.
    ``forward`` may be called from a worker thread; it must not touch the event loop.
    """

    name: str

    def forward(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]: ...

    def close(self) -> None: ...
