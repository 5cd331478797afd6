"""The contract every inference backend implements (ONNX Runtime CPU here; GPU backends later)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class Backend(Protocol):
    """Runs the transformer: padded ids + mask in, token embeddings ``[B, L, H]`` out.

    Pooling and normalization live in ``engine.pooling`` so every backend shares one implementation.
    ``forward`` may be called from a worker thread; it must not touch the event loop.

    A backend may also have ``describe() -> dict``: the runtime, the precision it computes in, the
    CPU flags or device it uses and why it was chosen (logged at start, shown by /readyz); read it
    through ``describe_backend``.

    A backend may also have ``length_multiple: int``: the batch width is padded up to a multiple of
    it (never past the model's length); read it through ``length_multiple``.
    """

    name: str

    def forward(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]: ...

    def close(self) -> None: ...


def describe_backend(backend: Backend) -> dict[str, Any]:
    """What the backend says about itself; at least its name."""
    describe = getattr(backend, "describe", None)
    info: dict[str, Any] = dict(describe()) if callable(describe) else {}
    info.setdefault("backend", backend.name)
    return info


def length_multiple(backend: Backend) -> int:
    """The multiple a backend wants its sequence width padded to (1: the batch's longest member)."""
    value = getattr(backend, "length_multiple", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def model_feeds(inputs: set[str], input_ids: npt.NDArray[np.int64],
                attention_mask: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.int64]]:
    """A BERT-style graph's inputs: token_type_ids (all zero, one segment) only where it has them."""
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.zeros_like(input_ids)
    return feeds
