"""The low-level half of one RPC connection: its event loop, framing limit, codec and send.

A :class:`Link` is shared by the parts of a :class:`~takopi.rpc.peer.Peer` (calls, streams,
references); it is bound to the loop that created it (the *peer loop*) and its socket is only
touched from that loop's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from takopi.rpc.codec import Codec
from takopi.rpc.errors import TOO_LARGE, PeerGone, ProtocolError, RpcError

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024

SendFn = Callable[[bytes], None]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Link:
    """Sends frames for one peer and knows whether the connection is still open."""

    __slots__ = (
        "close_reason",
        "closed",
        "codec",
        "loop",
        "loop_thread",
        "max_frame_bytes",
        "name",
        "send_raw",
    )

    def __init__(self, send_raw: SendFn, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.send_raw = send_raw
        self.loop = loop
        self.loop_thread = threading.get_ident()  # links are created on their loop's thread
        self.name = name
        self.closed = False
        self.close_reason: BaseException | None = None
        self.max_frame_bytes = DEFAULT_MAX_FRAME_BYTES
        self.codec = Codec(None, None)
        """Replaced by the peer with one that knows its references."""

    def on_peer_loop(self) -> bool:
        """Whether the caller runs on the peer loop."""
        return running_loop() is self.loop

    def gone(self) -> PeerGone:
        """The error everything pending on a closed connection fails with."""
        reason = self.close_reason
        if isinstance(reason, PeerGone):
            return PeerGone(reason.message)
        return PeerGone(f"peer {self.name} is gone" + (f": {reason}" if reason else ""))

    def encode(self, obj: Any) -> bytes:
        """Application value → body bytes (references exported through the codec)."""
        return self.codec.encode(obj)

    def decode(self, body: bytes) -> Any:
        """Body bytes → application value (references imported through the codec)."""
        return self.codec.decode(body)

    def send(self, frame: bytes) -> None:
        """Send one frame (peer loop). ``PeerGone`` when closed; ``ProtocolError(too_large)``
        for a frame the receiver's size limit would turn into a disconnect."""
        if self.closed:
            raise self.gone()
        if len(frame) > self.max_frame_bytes:
            raise ProtocolError(
                f"message of {len(frame)} bytes exceeds the {self.max_frame_bytes}-byte frame limit",
                code=TOO_LARGE,
            )
        self.send_raw(frame)

    def send_quiet(self, frame: bytes) -> None:
        """Send, ignoring RPC errors (replies nobody may be waiting for)."""
        try:
            self.send(frame)
        except RpcError:
            pass

    def threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the peer loop (from any thread); nothing if it is closed."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nothing left to do
            pass


__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Link", "SendFn", "running_loop"]
