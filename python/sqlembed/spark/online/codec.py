"""Frames between the driver and an online executor task. Framing and authentication are
multiprocessing.connection's; a frame's payload is one kind byte and raw little-endian buffers
(no pickle, no JSON: 0.1 ms per batch is what made executor placement worth it).

``B`` batch: u32 n, int32 lengths[n], int32 ids. ``R`` result: f64 compute seconds, u32 n,
u32 dim, float32 rows. ``E`` executor error (utf-8 text). ``S`` stop.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sqlembed.engine.tokenizer import TokenIds

F32 = npt.NDArray[np.float32]
STOP = b"S"
_U32 = struct.Struct("<I")
_RESULT = struct.Struct("<dII")


class ProtocolError(Exception):
    pass


def encode_batch(batch: Sequence[TokenIds]) -> bytes:
    lengths = np.fromiter((len(t) for t in batch), dtype="<i4", count=len(batch))
    ids = np.concatenate(batch).astype("<i4") if batch else np.empty(0, dtype="<i4")
    return b"B" + _U32.pack(len(batch)) + lengths.tobytes() + ids.tobytes()


def decode_batch(frame: bytes) -> list[TokenIds]:
    if frame[:1] != b"B" or len(frame) < 5:
        raise ProtocolError("not a batch frame")
    (n,) = _U32.unpack_from(frame, 1)
    if len(frame) < 5 + 4 * n:
        raise ProtocolError("batch frame is shorter than its lengths")
    lengths = np.frombuffer(frame, dtype="<i4", count=n, offset=5).astype(np.int64)
    ids = np.frombuffer(frame, dtype="<i4", offset=5 + 4 * n).astype(np.int64)
    if int(lengths.sum()) != len(ids) or (n and int(lengths.min()) < 0):
        raise ProtocolError("batch frame lengths do not add up")
    return list(np.split(ids, np.cumsum(lengths)[:-1])) if n else []


def encode_result(vectors: F32, seconds: float) -> bytes:
    n, dim = vectors.shape
    return b"R" + _RESULT.pack(seconds, n, dim) + np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def encode_error(message: str) -> bytes:
    return b"E" + message.encode("utf-8", "replace")[:4000]


def decode_result(frame: bytes, expected_rows: int) -> tuple[F32, float]:
    kind = frame[:1]
    if kind == b"E":
        raise ProtocolError("executor error: " + frame[1:].decode("utf-8", "replace"))
    if kind != b"R" or len(frame) < 1 + _RESULT.size:
        raise ProtocolError(f"unexpected frame kind {kind!r}")
    seconds, n, dim = _RESULT.unpack_from(frame, 1)
    if n != expected_rows or len(frame) != 1 + _RESULT.size + 4 * n * dim:
        raise ProtocolError("result frame does not match the batch")
    vectors = np.frombuffer(frame, dtype="<f4", offset=1 + _RESULT.size).reshape(n, dim).astype(np.float32)
    return vectors, seconds
