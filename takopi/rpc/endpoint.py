"""ZeroMQ endpoints: one ROUTER in the supervisor, one DEALER per worker.

Socket options (ARCHITECTURE.md §2 traps): ``LINGER=0`` (context termination never hangs),
``ROUTER_MANDATORY=1`` (a send to a gone peer fails instead of vanishing), ``MAXMSGSIZE``
(an oversized frame disconnects its sender before it is buffered), no PUB/SUB. A ROUTER
refuses to bind an ``ipc://`` path where a live process still accepts connections (a second
bind would silently steal it) and removes a stale socket file otherwise; the socket file is
made owner-only (0600). Worker death is seen via a pidfd on the pid from the HELLO (the
``authenticate`` callback should check it against the spawned pid) and, for the worker, via the
socket monitor (any disconnect = the supervisor is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import zmq

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.curve import CurveServer, ServerSecurity
from takopi.rpc.errors import PeerGone
from takopi.rpc.peer import DEFAULT_MAX_FRAME_BYTES, Peer
from takopi.rpc.sockets import PidWatch, check_address, configure, live_listener
from takopi.rpc.zsock import MonitorDriver, SocketDriver, Unreachable

log = get_logger("takopi.rpc")

Authenticator = Callable[[bytes, dict[str, Any]], Awaitable[bool | str | dict[str, Any]]]

_EXIT_DRAIN_MAX = 0.5
"""How long a dead worker's peer stays open waiting for its connection's end to be read."""
_GONE_KEPT = 256
"""Closed peer identities remembered to drop their late frames quietly (identities are
per incarnation, so a new worker never reuses one)."""
_SECRET_KEYS = ("secret",)


def _public_hello(hello: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hello.items() if k not in _SECRET_KEYS}


class RouterEndpoint:
    """Supervisor side: ONE ROUTER socket, many authenticated peers (keyed by identity).

    ``authenticate(identity, hello)`` decides each HELLO: ``True`` or a ``dict`` (merged into
    the WELCOME) accepts, ``False`` or a ``str`` (the reason) refuses. ``on_peer(peer)`` runs
    after a successful handshake, ``on_peer_lost(identity)`` when that peer is gone (either
    may be async). Bad input — garbage, oversized frames, frames from unknown identities, a
    second HELLO, a wrong protocol version — is refused or dropped with a log line; the
    endpoint keeps serving everyone else.
    """

    def __init__(
        self,
        address: str,
        *,
        authenticate: Authenticator,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        on_peer: Callable[[Peer], Any] | None = None,
        on_peer_lost: Callable[[bytes], Any] | None = None,
        handshake_timeout: float = 10.0,
        welcome: dict[str, Any] | None = None,
        watch_pids: bool = True,
        curve: CurveServer | None = None,
    ) -> None:
        self.address = address
        self.authenticate = authenticate
        self.max_frame_bytes = max_frame_bytes
        self.on_peer = on_peer
        self.on_peer_lost = on_peer_lost
        self.handshake_timeout = handshake_timeout
        self.welcome = dict(welcome or {})
        self.watch_pids = watch_pids
        self._path = check_address(address, curve=curve is not None)
        self._curve = curve
        self._security: ServerSecurity | None = None
        self._peers: dict[bytes, Peer] = {}
        self._authenticating: set[bytes] = set()
        self._watches: dict[bytes, PidWatch] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driver: SocketDriver | None = None
        self._monitor: MonitorDriver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self.refused_count = 0
        self.dropped_count = 0
        self._exiting: dict[bytes, tuple[Peer, PeerGone]] = {}
        """Peers whose process exited, closed once their last frames were read."""
        self._gone: OrderedDict[bytes, int] = OrderedDict()
        """Recently closed peers -> frames of theirs dropped since (bounded LRU)."""

    @property
    def peers(self) -> dict[bytes, Peer]:
        """Established peers by identity (a copy)."""
        return dict(self._peers)

    def peer(self, identity: bytes) -> Peer | None:
        """The established peer for ``identity``, or None."""
        return self._peers.get(identity)

    def start(self) -> None:
        """Bind now (on the running loop). Raises ``OSError`` if a live process owns the path."""
        if self._driver is not None:
            return
        loop = asyncio.get_running_loop()
        path = self._path
        if path is not None and os.path.exists(path):
            if live_listener(path):
                raise OSError(
                    errno.EADDRINUSE,
                    f"another process (a running supervisor?) is listening on {path}; "
                    "refusing to bind over it",
                )
            os.unlink(path)  # stale socket file from a dead process
        if path is not None:
            parent = os.path.dirname(path)
            mode = os.stat(parent).st_mode & 0o777
            if mode & 0o077:
                log.warning("rpc.runtime_dir.not_private", path=parent, mode=oct(mode))
        context: zmq.Context[Any] = zmq.Context.instance()
        if self._curve is not None:
            self._security = ServerSecurity(self._curve)
            context = self._security.context
        sock: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        configure(sock, self.max_frame_bytes)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self._security is not None:
            self._security.apply(sock)
        try:
            sock.bind(self.address)
        except zmq.ZMQError:
            sock.close(linger=0)
            if self._security is not None:
                self._security.close()
                self._security = None
            raise
        if path is None:  # tcp://host:* binds a free port: publish the real one
            self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if path is not None:
            os.chmod(path, 0o600)
        self._loop = loop
        self._stopped = asyncio.Event()
        self._driver = SocketDriver(
            sock, loop, self._on_message, routed=True, on_unreachable=self._on_unreachable
        )
        self._monitor = MonitorDriver(sock, loop, zmq.EVENT_DISCONNECTED, self._on_monitor)
        log.debug("rpc.router.bound", address=self.address)

    async def serve(self) -> None:
        """Bind (if :meth:`start` was not called) and serve until cancelled or closed."""
        self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            self._shutdown()

    async def aclose(self) -> None:
        """Stop serving: every peer fails with PeerGone, the socket is closed."""
        if self._stopped is not None:
            self._stopped.set()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._driver is None:
            return
        for peer in list(self._peers.values()):
            peer.close(PeerGone("supervisor endpoint closed"))
        for task in list(self._tasks):
            task.cancel()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        self._driver.close()
        self._driver = None
        if self._security is not None:
            self._security.close()
            self._security = None
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)

    # ------------------------------------------------------------------ inbound

    def _drop(self, event: str, identity: bytes, **fields: Any) -> None:
        self.dropped_count += 1
        log.warning(event, identity=identity[:64].hex(), **fields)

    def _on_message(self, frames: list[bytes]) -> None:
        identity = frames[0]
        if len(frames) != 2:
            self._drop("rpc.frame.garbage", identity, reason=f"{len(frames) - 1} data frames")
            return
        payload = frames[1]
        if len(payload) > self.max_frame_bytes:
            self._drop("rpc.frame.oversized", identity, size=len(payload))
            return
        peer = self._peers.get(identity)
        if peer is not None:
            peer._receive(payload)
            return
        try:
            msg = env.unpack(payload)
        except ValueError as exc:
            self._drop("rpc.frame.garbage", identity, reason=str(exc))
            return
        if identity in self._gone and msg[1] != env.HELLO:
            # Frames a closed peer sent before it went (stream credits, items): expected
            # after a worker died; dropped quietly, counted, summed up in one line.
            self.dropped_count += 1
            self._gone[identity] += 1
            if self._gone[identity] in (1, 1000):
                log.info(
                    "rpc.frame.from_closed_peer",
                    identity=identity[:64].decode("utf-8", "replace"),
                    dropped=self._gone[identity],
                )
            return
        self._gone.pop(identity, None)
        if msg[1] == env.HELLO:
            self._on_hello(identity, msg)
        elif msg[1] == env.BYE:
            # A worker closing after it was refused (or never got in): nothing to close.
            self.dropped_count += 1
            log.info("rpc.frame.bye_from_unknown", identity=identity[:64].hex())
        else:
            self._drop(
                "rpc.frame.unknown_identity", identity, kind=env.KIND_NAMES.get(msg[1], msg[1])
            )
            self._refuse(identity, "not connected: the first frame must be HELLO", quiet=True)

    def _refuse(self, identity: bytes, reason: str, *, quiet: bool = False, **fields: Any) -> None:
        self.refused_count += 1
        if not quiet:
            log.warning(
                "rpc.handshake.refused", identity=identity[:64].hex(), reason=reason, **fields
            )
        self._send_to(identity, env.pack(env.REFUSE, reason), raise_gone=False)

    def _on_hello(self, identity: bytes, msg: list[Any]) -> None:
        if identity in self._authenticating:
            self._refuse(identity, "duplicate HELLO while the first one is being checked")
            return
        hello = msg[2] if len(msg) > 2 else None
        if not isinstance(hello, dict) or any(not isinstance(k, str) for k in hello):
            self._refuse(identity, "malformed HELLO: expected a map")
            return
        info = _public_hello(hello)
        theirs = hello.get("protocol", msg[0])
        if msg[0] != env.PROTOCOL_VERSION or theirs != env.PROTOCOL_VERSION:
            self._refuse(
                identity,
                f"protocol version mismatch: worker speaks {theirs!r}, "
                f"supervisor speaks {env.PROTOCOL_VERSION}",
                hello=info,
            )
            return
        claimed = hello.get("identity")
        if claimed is not None and claimed != identity.hex():
            self._refuse(
                identity,
                "HELLO claims another identity than its connection's",
                hello=info,
            )
            return
        self._authenticating.add(identity)
        task = asyncio.get_running_loop().create_task(self._handshake(identity, hello, info))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handshake(
        self, identity: bytes, hello: dict[str, Any], info: dict[str, Any]
    ) -> None:
        try:
            try:
                verdict = await asyncio.wait_for(
                    self.authenticate(identity, hello), self.handshake_timeout
                )
            except TimeoutError:
                self._refuse(identity, "authentication timed out", hello=info)
                return
            except Exception as exc:
                log.exception("rpc.handshake.authenticate_failed", identity=identity.hex())
                self._refuse(identity, f"internal error during authentication: {exc}")
                return
            if verdict is False or verdict is None or isinstance(verdict, str):
                reason = verdict if isinstance(verdict, str) else "authentication failed"
                self._refuse(identity, reason, hello=info)
                return
            if identity in self._peers or self._driver is None:
                self._refuse(identity, "identity already connected", hello=info)
                return
            welcome = {
                "protocol": env.PROTOCOL_VERSION,
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                **self.welcome,
                **(verdict if isinstance(verdict, dict) else {}),
            }
            peer = Peer(lambda frame: self._send_to(identity, frame), info=info, identity=identity)
            peer._detach = self._detach
            peer.max_frame_bytes = self.max_frame_bytes
            self._peers[identity] = peer
            try:
                self._send_to(identity, env.pack(env.WELCOME, welcome))
            except PeerGone:
                peer.close(PeerGone("worker vanished during the handshake"))
                return
            pid = hello.get("pid")
            if self.watch_pids and type(pid) is int and pid > 0 and self._path is not None:
                assert self._loop is not None
                self._watches[identity] = PidWatch(
                    self._loop, pid, lambda: self._peer_exited(peer, pid)
                )
            log.info(
                "rpc.handshake.accepted",
                identity=identity[:64].decode("utf-8", "replace"),
                kind=info.get("kind"),
                id=info.get("id"),
                pid=pid,
            )
            self._call_back(self.on_peer, peer)
        finally:
            self._authenticating.discard(identity)

    def _call_back(self, cb: Callable[[Any], Any] | None, arg: Any) -> None:
        if cb is None:
            return
        try:
            result = cb(arg)
        except Exception:
            log.exception("rpc.endpoint.callback_failed")
            return
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _detach(self, peer: Peer) -> None:
        identity = peer.identity
        if self._peers.get(identity) is peer:
            del self._peers[identity]
        watch = self._watches.pop(identity, None)
        if watch is not None:
            watch.close()
        if self._driver is not None:
            self._driver.discard(identity)
        self._gone[identity] = 0
        while len(self._gone) > _GONE_KEPT:
            self._gone.popitem(last=False)
        log.info(
            "rpc.peer.lost",
            identity=identity[:64].decode("utf-8", "replace"),
            reason=str(peer.close_reason),
        )
        self._call_back(self.on_peer_lost, identity)

    # ------------------------------------------------------------------ outbound

    def _send_to(self, identity: bytes, frame: bytes, *, raise_gone: bool = True) -> None:
        driver = self._driver
        try:
            if driver is None:
                raise Unreachable(identity)
            driver.send([identity, frame])
        except Unreachable:
            peer = self._peers.get(identity)
            if peer is not None:
                assert self._loop is not None
                self._loop.call_soon(self._close_unreachable, peer)
            if raise_gone:
                raise PeerGone(f"{identity[:64]!r} is unreachable") from None

    def _on_unreachable(self, identity: bytes | None) -> None:
        peer = self._peers.get(identity) if identity is not None else None
        if peer is not None and self._loop is not None:
            # Called from the socket driver's backlog loop: closing (and draining) there
            # could dispatch into that loop and detach another backlogged peer under it.
            self._loop.call_soon(self._close_unreachable, peer)

    def _peer_exited(self, peer: Peer, pid: int) -> None:
        """A peer's process exited. What it sent just before (an ack, a last stream item)
        may still be on its way: the zmq I/O thread reads a connection up to its end, then
        reports it disconnected. So the peer is closed only once ITS connection is gone (or at
        most :data:`_EXIT_DRAIN_MAX` later), after the queued frames were dispatched."""
        # An exited process's pidfd stays readable: stop watching it, or this callback would
        # run on every loop iteration until the peer is closed.
        watch = self._watches.pop(peer.identity, None)
        if watch is not None:
            watch.close()
        if peer.closed or peer.identity in self._exiting:
            return
        assert self._loop is not None
        self._exiting[peer.identity] = (peer, PeerGone(f"worker process {pid} exited"))
        self._loop.call_later(_EXIT_DRAIN_MAX, self._finish_exit, peer)
        # Its connection may already be gone (the disconnect was reported first).
        self._loop.call_soon(self._close_if_disconnected, [peer])

    def _finish_exit(self, peer: Peer) -> None:
        """The fallback: ``peer``'s connection end was never seen; close it anyway."""
        entry = self._exiting.get(peer.identity)
        if entry is None or entry[0] is not peer:
            return
        self._close_drained(peer, entry[1])

    def _close_drained(self, peer: Peer, reason: PeerGone) -> None:
        """Dispatch every frame already read (the peer's last ones among them), then close."""
        entry = self._exiting.get(peer.identity)
        if entry is not None and entry[0] is peer:
            del self._exiting[peer.identity]
        if self._driver is not None:
            self._driver.drain_now()
        peer.close(reason)

    def _close_unreachable(self, peer: Peer) -> None:
        if peer.closed:
            return
        entry = self._exiting.get(peer.identity)
        if entry is not None and entry[0] is peer:
            reason = entry[1]
        else:
            reason = PeerGone("worker is unreachable (disconnected)")
        self._close_drained(peer, reason)

    def _connection_gone(self, identity: bytes) -> bool:
        """Whether ``identity``'s connection was torn down. ROUTER_MANDATORY makes a send to
        it fail (EHOSTUNREACH) only once zmq terminated its pipe, which happens after the
        connection's end was read: its last frames are then queued for us already."""
        driver = self._driver
        if driver is None or driver.backlogged(identity):
            return False  # a backlog is retried; its failure reports the peer unreachable
        try:
            driver.send([identity, env.pack(env.PING, 0)])
        except Unreachable:
            return True
        return False

    def _close_if_disconnected(self, peers: list[Peer]) -> None:
        """Close those of ``peers`` whose connection went away — and only those: a peer whose
        process exited but whose connection is still being read keeps waiting for it."""
        for peer in peers:
            if not peer.closed and self._connection_gone(peer.identity):
                self._close_unreachable(peer)

    def _close_disconnected(self) -> None:
        """After a disconnect: probe every peer. Which one it was is not told, and it may be
        one whose process lives on (zmq drops the connection of a peer that sent an
        oversized frame), so nothing else would report it."""
        self._close_if_disconnected(list(self._peers.values()))

    def _on_monitor(self, event: int, value: int) -> None:
        # A connection went away. Which peer it carried is not told (the fd is already
        # closed, and may be reused), so every peer is probed; zmq may report the disconnect
        # before it terminated the pipe, hence the retries.
        log.debug("rpc.router.disconnect", fd=value)
        assert self._loop is not None
        for delay in (0.005, 0.05, 0.2):
            self._loop.call_later(delay, self._close_disconnected)


from takopi.rpc.dealer import DealerEndpoint  # noqa: E402  (the worker side, re-exported)

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Authenticator", "DealerEndpoint", "RouterEndpoint"]
