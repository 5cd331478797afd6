"""Token ids and vectors as raw little-endian buffers: the one encoding every process boundary
uses (online executors, spark/online/codec.py; front processes, fronts/wire.py). No pickle, no
JSON of floats: a batch crosses in a copy or two.

ids:     u32 n, int32 lengths[n], int32 ids (all texts concatenated)
vectors: u32 rows, u32 dims, float32 rows x dims
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sqlembed.engine.tokenizer import TokenIds

F32 = npt.NDArray[np.float32]
_U32 = struct.Struct("<I")
_SHAPE = struct.Struct("<II")


class FrameError(ValueError):
    """A buffer that does not hold what its header says."""


def pack_ids(batch: Sequence[TokenIds]) -> bytes:
    lengths = np.fromiter((len(t) for t in batch), dtype="<i4", count=len(batch))
    ids = np.concatenate(batch).astype("<i4") if batch else np.empty(0, dtype="<i4")
    return _U32.pack(len(batch)) + lengths.tobytes() + ids.tobytes()


def unpack_ids(buf: bytes, offset: int = 0) -> list[TokenIds]:
    if len(buf) < offset + 4:
        raise FrameError("token frame is too short")
    (n,) = _U32.unpack_from(buf, offset)
    if len(buf) < offset + 4 + 4 * n:
        raise FrameError("token frame is shorter than its lengths")
    lengths = np.frombuffer(buf, dtype="<i4", count=n, offset=offset + 4).astype(np.int64)
    ids = np.frombuffer(buf, dtype="<i4", offset=offset + 4 + 4 * n).astype(np.int64)
    if int(lengths.sum()) != len(ids) or (n and int(lengths.min()) < 0):
        raise FrameError("token frame lengths do not add up")
    return list(np.split(ids, np.cumsum(lengths)[:-1])) if n else []


def pack_vectors(vectors: F32) -> bytes:
    rows, dims = vectors.shape
    return _SHAPE.pack(rows, dims) + np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def unpack_vectors(buf: bytes, offset: int = 0, expected_rows: int | None = None) -> F32:
    if len(buf) < offset + _SHAPE.size:
        raise FrameError("vector frame is too short")
    rows, dims = _SHAPE.unpack_from(buf, offset)
    if (expected_rows is not None and rows != expected_rows) or len(buf) != offset + _SHAPE.size + 4 * rows * dims:
        raise FrameError("vector frame does not match its batch")
    return np.frombuffer(buf, dtype="<f4", offset=offset + _SHAPE.size).reshape(rows, dims).astype(np.float32)
