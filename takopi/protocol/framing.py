"""Length-prefixed frames for the engine probe's pipes (4-byte big-endian length + payload).

The probe (:mod:`takopi.worker.probe`) talks to the supervisor over plain pipes, not the RPC
endpoint: it lives for a moment and needs no handshake. Both sides frame codec bytes alike.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_LENGTH = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix."""
    return _LENGTH.pack(len(payload)) + payload


def write_frame(out: BinaryIO, payload: bytes) -> None:
    """Write one frame and flush."""
    out.write(frame(payload))
    out.flush()


def read_frame(data: bytes) -> tuple[bytes | None, bytes]:
    """``(payload, rest)`` when ``data`` starts with a whole frame, else ``(None, data)``.
    ``ValueError`` for a frame larger than :data:`MAX_FRAME`."""
    if len(data) < _LENGTH.size:
        return None, data
    (size,) = _LENGTH.unpack_from(data)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    end = _LENGTH.size + size
    if len(data) < end:
        return None, data
    return data[_LENGTH.size : end], data[end:]


__all__ = ["MAX_FRAME", "frame", "read_frame", "write_frame"]
