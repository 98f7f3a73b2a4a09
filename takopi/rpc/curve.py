"""CURVE encryption and a client-key allow-list for the (explicit, opt-in) tcp:// transport.

ipc:// in a private runtime directory is the default and needs none of this. A tcp:// ROUTER
must be given a :class:`CurveServer` (its key pair and the allowed client public keys); a
tcp:// DEALER a :class:`CurveClient` (the server's public key and its own key pair). Keys are
Z85 text as produced by :func:`curve_keypair`. Clients whose key is not allowed fail the
ZeroMQ handshake and never reach the HELLO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zmq

ZAP_DOMAIN = "takopi"


def curve_keypair() -> tuple[bytes, bytes]:
    """A new ``(public_key, secret_key)`` pair, Z85-encoded."""
    public, secret = zmq.curve_keypair()
    return public, secret


@dataclass(frozen=True, slots=True)
class CurveServer:
    """Server key pair plus the allow-list of client public keys (Z85)."""

    public_key: bytes
    secret_key: bytes
    allowed_client_keys: frozenset[bytes] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class CurveClient:
    """The server's public key and this client's key pair (Z85)."""

    server_public_key: bytes
    public_key: bytes
    secret_key: bytes


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise ValueError("this libzmq has no CURVE support: tcp:// endpoints are unavailable")


class _AllowList:
    def __init__(self, keys: frozenset[bytes]) -> None:
        self._keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self._keys


class ServerSecurity:
    """Owns the ZAP handler (a thread on a private context) for one tcp:// ROUTER."""

    def __init__(self, config: CurveServer) -> None:
        _require_curve()
        from zmq.auth.thread import ThreadAuthenticator

        self.context: zmq.Context[Any] = zmq.Context()
        self._auth = ThreadAuthenticator(self.context)
        self._auth.start()
        self._auth.configure_curve_callback(
            ZAP_DOMAIN, credentials_provider=_AllowList(frozenset(config.allowed_client_keys))
        )
        self._config = config

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server checked by this allow-list."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self._config.public_key)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._config.secret_key)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())

    def close(self) -> None:
        """Stop the ZAP thread and terminate the private context."""
        self._auth.stop()
        self.context.term()


def apply_client(sock: zmq.Socket[Any], config: CurveClient) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is configured."""
    _require_curve()
    sock.setsockopt(zmq.CURVE_SERVERKEY, config.server_public_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, config.public_key)
    sock.setsockopt(zmq.CURVE_SECRETKEY, config.secret_key)


__all__ = [
    "ZAP_DOMAIN",
    "CurveClient",
    "CurveServer",
    "ServerSecurity",
    "apply_client",
    "curve_keypair",
]
