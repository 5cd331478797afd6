"""Frames between the driver and an online executor task. Framing and authentication are
multiprocessing.connection's; a frame's payload is one kind byte and the raw buffers of
engine/frames.py (no pickle, no JSON: 0.1 ms per batch is what made executor placement worth it).

``B`` batch: token ids. ``R`` result: f64 compute seconds, then vectors. ``E`` executor error
(JSON, ``errors.to_wire``). ``S`` stop.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Sequence
from multiprocessing.connection import Connection

import numpy as np
import numpy.typing as npt

from sqlembed.engine.frames import FrameError, pack_ids, pack_vectors, unpack_ids, unpack_vectors
from sqlembed.engine.tokenizer import TokenIds
from sqlembed.errors import from_wire, to_wire

F32 = npt.NDArray[np.float32]
STOP = b"S"
_SECONDS = struct.Struct("<d")


class ProtocolError(Exception):
    pass


def no_delay(conn: Connection) -> None:
    """TCP_NODELAY on a connection's socket (both ends call it).

    multiprocessing.connection writes a frame over 16 KiB as two sends (header, then payload);
    with Nagle on, the payload waits for the peer's delayed ACK of the header, up to 40 ms per
    batch. Measured: placement=spark fell from 1.03x to 0.79x of local before this.
    """
    sock = socket.socket(fileno=conn.fileno())  # a view of the same descriptor, detached below
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        sock.detach()


def encode_batch(batch: Sequence[TokenIds]) -> bytes:
    return b"B" + pack_ids(batch)


def decode_batch(frame: bytes) -> list[TokenIds]:
    if frame[:1] != b"B":
        raise ProtocolError("not a batch frame")
    try:
        return unpack_ids(frame, 1)
    except FrameError as exc:
        raise ProtocolError(str(exc)) from None


def encode_result(vectors: F32, seconds: float) -> bytes:
    return b"R" + _SECONDS.pack(seconds) + pack_vectors(vectors)


def encode_error(exc: BaseException) -> bytes:
    return b"E" + json.dumps(to_wire(exc)).encode()


def decode_result(frame: bytes, expected_rows: int) -> tuple[F32, float]:
    kind = frame[:1]
    if kind == b"E":
        try:
            body = json.loads(frame[1:])
            text = str(body.get("detail") or from_wire(body).message)
        except (ValueError, AttributeError):
            text = "an unreadable error frame"
        raise ProtocolError(f"executor error: {text}")
    if kind != b"R" or len(frame) < 1 + _SECONDS.size:
        raise ProtocolError(f"unexpected frame kind {kind!r}")
    (seconds,) = _SECONDS.unpack_from(frame, 1)
    try:
        return unpack_vectors(frame, 1 + _SECONDS.size, expected_rows), seconds
    except FrameError as exc:
        raise ProtocolError(str(exc)) from None
