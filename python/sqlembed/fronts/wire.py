"""The frames between a front process and the engine host, over a Unix socket: token ids in,
vectors (or a typed error) out, as engine/frames.py packs them.

Frame: ``<I`` payload length, then the payload.
Request: ``<I`` request id, then token ids.
Reply:   ``<IB`` request id, status; status 0: vectors; status 1: UTF-8 JSON
         ``{"type", "message", "param", "retry_after"}``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sqlembed.engine.frames import pack_ids, pack_vectors, unpack_ids, unpack_vectors
from sqlembed.engine.tokenizer import TokenIds
from sqlembed.errors import SqlembedError, from_wire, to_wire

F32 = npt.NDArray[np.float32]
_LEN = struct.Struct("<I")
_REQ = struct.Struct("<I")
_REP = struct.Struct("<IB")
MAX_FRAME = 256 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes is larger than {MAX_FRAME}")
    return await reader.readexactly(n)


def encode_request(rid: int, ids: Sequence[TokenIds]) -> bytes:
    return frame(_REQ.pack(rid) + pack_ids(ids))


def decode_request(payload: bytes) -> tuple[int, list[TokenIds]]:
    (rid,) = _REQ.unpack_from(payload)
    return rid, unpack_ids(payload, _REQ.size)


def encode_vectors(rid: int, vectors: F32) -> bytes:
    return frame(_REP.pack(rid, 0) + pack_vectors(vectors))


def encode_error(rid: int, exc: BaseException) -> bytes:
    return frame(_REP.pack(rid, 1) + json.dumps(to_wire(exc)).encode())


def decode_reply(payload: bytes) -> tuple[int, F32 | SqlembedError]:
    rid, status = _REP.unpack_from(payload)
    if status == 0:
        return rid, unpack_vectors(payload, _REP.size)
    return rid, from_wire(json.loads(payload[_REP.size:]))
