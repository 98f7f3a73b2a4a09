"""ROUTER (supervisor) and DEALER (worker) endpoints. Implementation in progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from takopi.rpc.peer import Peer

Authenticator = Callable[[bytes, dict[str, Any]], Awaitable[bool | str | dict[str, Any]]]


class RouterEndpoint:
    """Supervisor side: one ROUTER socket, many peers."""

    def __init__(
        self,
        address: str,
        *,
        authenticate: Authenticator,
        max_frame_bytes: int = 64 * 1024 * 1024,
        on_peer: Callable[[Peer], Any] | None = None,
        on_peer_lost: Callable[[bytes], Any] | None = None,
    ) -> None:
        self.address = address
        self.authenticate = authenticate
        self.max_frame_bytes = max_frame_bytes
        self.on_peer = on_peer
        self.on_peer_lost = on_peer_lost

    async def serve(self) -> None:
        """Bind and serve until cancelled."""
        raise NotImplementedError

    def peer(self, identity: bytes) -> Peer | None:
        """The established peer for ``identity``."""
        raise NotImplementedError


class DealerEndpoint:
    """Worker side."""

    @classmethod
    async def connect(
        cls, address: str, *, identity: bytes, hello: dict[str, Any], timeout: float = 10.0
    ) -> Peer:
        """Connect, handshake, return the peer; raises HandshakeRefused."""
        raise NotImplementedError
