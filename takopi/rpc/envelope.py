"""The versioned msgpack envelope: one ZeroMQ frame = one msgpack array.

``[version, kind, ...fields]``. Application values travel in a separate ``body`` (msgpack bytes
produced by :mod:`takopi.rpc.codec`), so a header always decodes even when a body does not —
the receiver can then answer ``bad_request`` to the right request id instead of dropping it.

=============  ==============================================================================
kind           fields after ``[version, kind]``
=============  ==============================================================================
REQUEST        id, target (None or ref id), method, body=[args, kwargs]
RESPONSE       id, body=result
ERROR          id, {code, message, retryable, traceback, type}
NOTIFY         target, method, body=[args, kwargs]
STREAM_OPEN    id, target, method, window, body=[args, kwargs]
STREAM_ITEMS   id, first_seq, body=[item, ...]   (batched: several items per frame)
STREAM_END     id, item_count, error dict or None
CANCEL         id (a request or a stream the sender opened / consumes)
CREDIT         id, n (consumer → producer: n more items may be sent)
RELEASE        [[ref_id, count], ...]
PING / PONG    nonce
HELLO          hello dict (worker → supervisor, first frame; layout frozen across versions)
WELCOME        welcome dict (supervisor → worker)
REFUSE         reason string
BYE            reason string (orderly close)
=============  ==============================================================================
"""

from __future__ import annotations

from typing import Any

import msgpack

PROTOCOL_VERSION = 2
"""2: supervisor↔worker methods take and answer :mod:`takopi.protocol` messages."""

REQUEST = 1
RESPONSE = 2
ERROR = 3
NOTIFY = 4
STREAM_OPEN = 5
STREAM_ITEMS = 6
STREAM_END = 7
CANCEL = 8
CREDIT = 9
RELEASE = 10
PING = 11
PONG = 12
HELLO = 13
WELCOME = 14
REFUSE = 15
BYE = 16

KIND_NAMES = {
    REQUEST: "request",
    RESPONSE: "response",
    ERROR: "error",
    NOTIFY: "notify",
    STREAM_OPEN: "stream_open",
    STREAM_ITEMS: "stream_items",
    STREAM_END: "stream_end",
    CANCEL: "cancel",
    CREDIT: "credit",
    RELEASE: "release",
    PING: "ping",
    PONG: "pong",
    HELLO: "hello",
    WELCOME: "welcome",
    REFUSE: "refuse",
    BYE: "bye",
}


def pack(kind: int, *fields: Any) -> bytes:
    """One frame: ``[PROTOCOL_VERSION, kind, *fields]`` (fields must be plain msgpack data)."""
    frame: bytes = msgpack.packb([PROTOCOL_VERSION, kind, *fields], use_bin_type=True)
    return frame


def unpack(frame: bytes) -> list[Any]:
    """Decode a frame header; ``ValueError`` if it is not ``[int, int, ...]``."""
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:
        raise ValueError(f"undecodable frame ({len(frame)} bytes): {exc}") from None
    if (
        not isinstance(msg, list)
        or len(msg) < 2
        or type(msg[0]) is not int
        or type(msg[1]) is not int
    ):
        raise ValueError(f"not an rpc envelope ({len(frame)} bytes)")
    return msg


__all__ = [
    "BYE",
    "CANCEL",
    "CREDIT",
    "ERROR",
    "HELLO",
    "KIND_NAMES",
    "NOTIFY",
    "PING",
    "PONG",
    "PROTOCOL_VERSION",
    "REFUSE",
    "RELEASE",
    "REQUEST",
    "RESPONSE",
    "STREAM_END",
    "STREAM_ITEMS",
    "STREAM_OPEN",
    "WELCOME",
    "pack",
    "unpack",
]
