"""Pooling and normalization, matching sentence-transformers' Pooling and Normalize modules."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from sqlembed.errors import UnprocessableInput

PoolingMode = Literal["mean", "cls", "max", "mean_sqrt_len", "lasttoken"]
POOLING_MODES: tuple[PoolingMode, ...] = ("mean", "cls", "max", "mean_sqrt_len", "lasttoken")

F32 = npt.NDArray[np.float32]


def pool(hidden: F32, mask: npt.NDArray[np.int64], mode: PoolingMode) -> F32:
    """Reduce token embeddings ``[B, L, H]`` to sentence embeddings ``[B, H]``."""
    if mode == "cls":
        return np.ascontiguousarray(hidden[:, 0, :])
    m = mask[:, :, None].astype(np.float32)
    if mode in ("mean", "mean_sqrt_len"):
        summed = np.einsum("blh,blx->bh", hidden, m)
        counts = np.maximum(m.sum(axis=1), 1e-9)
        if mode == "mean":
            return np.asarray(summed / counts, dtype=np.float32)
        return np.asarray(summed / np.sqrt(counts), dtype=np.float32)
    if mode == "max":
        masked = np.where(m > 0, hidden, np.float32(-1e9))
        return np.asarray(masked.max(axis=1), dtype=np.float32)
    if mode == "lasttoken":
        last = mask.sum(axis=1) - 1
        return np.ascontiguousarray(hidden[np.arange(hidden.shape[0]), last, :])
    raise ValueError(f"unknown pooling mode {mode!r}")


def l2_normalize(x: F32) -> F32:
    # Same epsilon as torch.nn.functional.normalize, which sentence-transformers uses.
    norms = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.asarray(x / norms, dtype=np.float32)


def check_dimensions(model_dimensions: int, dimensions: int | None) -> None:
    """A request may ask for fewer dimensions than the model has, never more."""
    if dimensions is not None and dimensions > model_dimensions:
        raise UnprocessableInput(
            f"dimensions={dimensions} is larger than the model's {model_dimensions} dimensions",
            param="dimensions",
        )


def truncate_dimensions(vectors: F32, dimensions: int | None, *, normalize: bool = True) -> F32:
    """Keep the first ``dimensions`` components and re-normalize (Matryoshka-style truncation)."""
    check_dimensions(vectors.shape[1], dimensions)
    if dimensions is None or dimensions == vectors.shape[1]:
        return vectors
    out = np.ascontiguousarray(vectors[:, :dimensions])
    return l2_normalize(out) if normalize else out
