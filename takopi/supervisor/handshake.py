"""Who may connect: each incarnation's identity is expected with its one-time secret.

The RPC endpoint asks :meth:`Handshake.authenticate` about every HELLO; an accepted worker's
connection is then handed to its watcher (:meth:`Handshake.on_peer`). A secret works once,
the HELLO must name the kind and plugin the identity was issued for, and the plugin API
version must be ours; refusals carry a reason the worker prints. An accepted worker's WELCOME
carries its environment (``env``, see :mod:`takopi.supervisor.worker_env`): secrets reach a
worker only this way, over the private RPC socket, after it proved who it is.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from takopi.logging import get_logger
from takopi.protocol import Hello

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.supervisor.watcher import Incarnation, Watcher

log = get_logger(__name__)


def _short(identity: bytes) -> str:
    return identity[:64].decode("utf-8", "replace")


class Handshake:
    """Pending identities of spawned incarnations, and their authentication."""

    def __init__(self) -> None:
        self._pending: dict[bytes, tuple[Watcher, Incarnation]] = {}
        self._accepted: dict[bytes, tuple[Watcher, Incarnation]] = {}
        self.environment: Callable[[str, str], Awaitable[dict[str, str]]] | None = None
        """``(kind, plugin_id)`` → the environment sent in that worker's WELCOME."""

    def expect(self, watcher: Watcher, incarnation: Incarnation) -> None:
        """``incarnation`` is about to be spawned: its HELLO will be accepted once."""
        self._pending[incarnation.identity] = (watcher, incarnation)

    def forget(self, identity: bytes) -> None:
        """The incarnation is gone (or never came): its identity is refused from now on."""
        self._pending.pop(identity, None)
        self._accepted.pop(identity, None)

    async def authenticate(
        self, identity: bytes, raw_hello: dict[str, Any]
    ) -> bool | str | dict[str, Any]:
        """The endpoint's verdict on a HELLO: the WELCOME additions (the worker's ``env``)
        or True, or the reason for refusing it."""
        entry = self._pending.get(identity)
        if entry is None:
            log.warning("rpc.unknown_identity", identity=_short(identity))
            return "unknown identity"
        watcher, incarnation = entry
        hello = Hello.from_wire(raw_hello)
        expected = incarnation.secret
        if (
            hello.secret is None
            or expected is None
            or not hmac.compare_digest(hello.secret.encode(), expected.encode())
        ):
            log.warning("rpc.bad_secret", worker=watcher.name)
            return "wrong secret"
        if hello.kind != watcher.kind or hello.id != watcher.plugin_id:
            log.warning("rpc.identity_mismatch", worker=watcher.name, kind=hello.kind, id=hello.id)
            return f"this identity belongs to {watcher.name}"
        from takopi.api import TAKOPI_PLUGIN_API_VERSION

        if hello.api_version != TAKOPI_PLUGIN_API_VERSION:
            return (
                f"plugin API version mismatch: worker has {hello.api_version}, "
                f"supervisor has {TAKOPI_PLUGIN_API_VERSION}"
            )
        env = None
        if self.environment is not None:
            env = await self.environment(watcher.kind, watcher.plugin_id)
            if self._pending.get(identity) is not entry:  # forgotten meanwhile
                return "this worker is no longer expected"
        del self._pending[identity]
        incarnation.secret = None  # one-time
        incarnation.hello = watcher.hello = hello.public()
        self._accepted[identity] = entry
        return True if env is None else {"env": env}

    def on_peer(self, peer: Peer) -> None:
        """An accepted worker's connection: hand it to its watcher."""
        entry = self._accepted.pop(peer.identity, None)
        if entry is None:
            log.warning("rpc.peer_without_worker", identity=_short(peer.identity))
            return
        watcher, incarnation = entry
        watcher.attach(incarnation, peer)

    def on_peer_lost(self, identity: bytes) -> None:
        """A connection closed (its watcher sees the process exit on its own)."""
        log.debug("rpc.peer_lost", identity=_short(identity))


__all__ = ["Handshake"]
