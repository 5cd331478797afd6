"""The frames between a front process and the engine host: token ids in, vectors (or a typed
error) out, over a Unix socket. Binary and copy-light: ids travel as int32, vectors as float32
(numpy buffers, no JSON of floats on this hop).

Frame: ``<I`` payload length, then the payload.
Request:  ``<IH`` request id, text count; ``<u2`` lengths; ``<i4`` the ids of every text, concatenated.
Reply:    ``<IB`` request id, status; status 0: ``<HH`` rows, dimensions + ``<f4`` vectors;
          status 1: UTF-8 JSON ``{"type", "message", "retry_after"}``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sqlembed.engine.tokenizer import TokenIds
from sqlembed.errors import InvalidInput, NotReady, Overloaded, SqlembedError, UnprocessableInput

F32 = npt.NDArray[np.float32]
_LEN = struct.Struct("<I")
_REQ = struct.Struct("<IH")
_REP = struct.Struct("<IB")
_SHAPE = struct.Struct("<HH")
MAX_FRAME = 256 * 1024 * 1024
_ERRORS: dict[str, type[SqlembedError]] = {c.__name__: c for c in (Overloaded, NotReady, InvalidInput,
                                                                    UnprocessableInput, SqlembedError)}


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes is larger than {MAX_FRAME}")
    return await reader.readexactly(n)


def encode_request(rid: int, ids: Sequence[TokenIds]) -> bytes:
    lengths = np.fromiter((len(t) for t in ids), dtype="<u2", count=len(ids))
    body = np.concatenate(ids).astype("<i4", copy=False) if ids else np.empty(0, "<i4")
    return frame(_REQ.pack(rid, len(ids)) + lengths.tobytes() + body.tobytes())


def decode_request(payload: bytes) -> tuple[int, list[TokenIds]]:
    rid, n = _REQ.unpack_from(payload)
    off = _REQ.size
    lengths = np.frombuffer(payload, dtype="<u2", count=n, offset=off)
    off += 2 * n
    flat = np.frombuffer(payload, dtype="<i4", offset=off).astype(np.int64)
    if int(lengths.sum()) != len(flat):
        raise ValueError("token ids and lengths disagree")
    if n == 0:
        return rid, []
    return rid, list(np.split(flat, np.cumsum(lengths)[:-1]))


def encode_vectors(rid: int, vectors: F32) -> bytes:
    rows, dims = vectors.shape
    return frame(_REP.pack(rid, 0) + _SHAPE.pack(rows, dims) + np.ascontiguousarray(vectors, "<f4").tobytes())


def encode_error(rid: int, exc: BaseException) -> bytes:
    if isinstance(exc, SqlembedError):
        body: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message, "param": exc.param,
                                "retry_after": getattr(exc, "retry_after", None)}
    else:  # an engine failure: its type, never a traceback
        body = {"type": "SqlembedError", "message": f"the engine failed: {type(exc).__name__}"}
    return frame(_REP.pack(rid, 1) + json.dumps(body).encode())


def decode_reply(payload: bytes) -> tuple[int, F32 | SqlembedError]:
    rid, status = _REP.unpack_from(payload)
    if status == 0:
        rows, dims = _SHAPE.unpack_from(payload, _REP.size)
        vectors = np.frombuffer(payload, dtype="<f4", offset=_REP.size + _SHAPE.size).reshape(rows, dims)
        return rid, vectors
    body = json.loads(payload[_REP.size:])
    cls = _ERRORS.get(body.get("type"), SqlembedError)
    if cls is Overloaded:
        return rid, Overloaded(body["message"], retry_after=float(body.get("retry_after") or 1))
    return rid, cls(body["message"], param=body.get("param"))
