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
import socket as _socket
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import zmq

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.curve import CurveClient, CurveServer, ServerSecurity, apply_client
from takopi.rpc.errors import CallTimeout, HandshakeRefused, PeerGone, ProtocolError
from takopi.rpc.peer import DEFAULT_MAX_FRAME_BYTES, Peer
from takopi.rpc.zsock import MonitorDriver, SocketDriver, Unreachable

log = get_logger("takopi.rpc")

Authenticator = Callable[[bytes, dict[str, Any]], Awaitable[bool | str | dict[str, Any]]]

_HWM = 100_000
_EXIT_DRAIN_MAX = 0.5
"""How long a dead worker's peer stays open waiting for its connection's end to be read."""
_GONE_KEPT = 256
"""Closed peer identities remembered to drop their late frames quietly (identities are
per incarnation, so a new worker never reuses one)."""
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
_SECRET_KEYS = ("secret",)


def _check_address(address: str, *, curve: bool = False) -> str | None:
    """The filesystem path of an ipc:// address (None for tcp://, which needs CURVE)."""
    if address.startswith("ipc://"):
        path = address[len("ipc://") :]
        if not path.startswith("/"):
            raise ValueError(f"ipc address must be absolute: {address}")
        return path
    if address.startswith("tcp://"):
        if not curve:
            raise ValueError(
                f"refusing {address}: tcp:// needs CURVE encryption with a key allow-list "
                "(pass curve=CurveServer(...) / CurveClient(...)); prefer an ipc:// address "
                "in a private runtime directory"
            )
        return None
    raise ValueError(f"unsupported rpc address {address!r} (expected ipc:///abs/path.sock)")


def _live_listener(path: str) -> bool:
    """True if a process accepts connections on the unix socket at ``path``."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            return False
        raise
    finally:
        s.close()
    return True


def _configure(sock: zmq.Socket[Any], max_frame_bytes: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
    sock.setsockopt(zmq.SNDHWM, _HWM)
    sock.setsockopt(zmq.RCVHWM, _HWM)


def _public_hello(hello: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hello.items() if k not in _SECRET_KEYS}


class _PidWatch:
    """Calls ``on_exit`` on the loop when process ``pid`` exits (pidfd; Linux ≥ 5.3)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pid: int, on_exit: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._fd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return
        try:
            self._fd = pidfd_open(pid)
        except ProcessLookupError:
            loop.call_soon(on_exit)
            return
        except OSError:
            return
        loop.add_reader(self._fd, on_exit)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


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
        self._path = _check_address(address, curve=curve is not None)
        self._curve = curve
        self._security: ServerSecurity | None = None
        self._peers: dict[bytes, Peer] = {}
        self._authenticating: set[bytes] = set()
        self._watches: dict[bytes, _PidWatch] = {}
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
            if _live_listener(path):
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
        _configure(sock, self.max_frame_bytes)
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
                self._watches[identity] = _PidWatch(
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
                self._loop.call_soon(peer.close, PeerGone("worker is unreachable (disconnected)"))
            if raise_gone:
                raise PeerGone(f"{identity[:64]!r} is unreachable") from None

    def _on_unreachable(self, identity: bytes | None) -> None:
        peer = self._peers.get(identity) if identity is not None else None
        if peer is not None:
            peer.close(PeerGone("worker is unreachable (disconnected)"))

    def _peer_exited(self, peer: Peer, pid: int) -> None:
        """A peer's process exited. What it sent just before (an ack, a last stream item)
        may still be on its way: the zmq I/O thread reads a connection up to its end, then
        reports it disconnected. So the peer is closed only after that report (or at most
        :data:`_EXIT_DRAIN_MAX` later), once the queued frames were dispatched."""
        if peer.closed or peer.identity in self._exiting:
            return
        assert self._loop is not None
        self._exiting[peer.identity] = (peer, PeerGone(f"worker process {pid} exited"))
        self._loop.call_later(_EXIT_DRAIN_MAX, self._finish_exits)

    def _finish_exits(self) -> None:
        if not self._exiting:
            return
        if self._driver is not None:
            self._driver.drain_now()
        exiting, self._exiting = self._exiting, {}
        for peer, reason in exiting.values():
            peer.close(reason)

    def _on_monitor(self, event: int, value: int) -> None:
        # A connection went away: probe every peer; ROUTER_MANDATORY makes sends to identities
        # that lost their pipe fail at once (EHOSTUNREACH) and close those peers. Peers whose
        # process exited are closed once their last frames are read.
        log.debug("rpc.router.disconnect", fd=value)
        assert self._loop is not None
        self._loop.call_later(0.005, self._finish_exits)
        for delay in (0.01, 0.2):
            self._loop.call_later(delay, self._probe)

    def _probe(self) -> None:
        for identity, peer in list(self._peers.items()):
            if not peer.closed:
                self._send_to(identity, env.pack(env.PING, 0), raise_gone=False)


class DealerEndpoint:
    """Worker side: connect a DEALER, say HELLO, get a :class:`Peer` (or a refusal)."""

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        identity: bytes,
        hello: dict[str, Any],
        timeout: float = 10.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        curve: CurveClient | None = None,
    ) -> Peer:
        """Handshake with the supervisor at ``address``.

        ``hello`` should carry ``kind``, ``id``, ``distribution`` and ``secret``; protocol,
        plugin API, takopi and Python versions, pid and identity are filled in. Raises
        :class:`HandshakeRefused` (``message`` is the supervisor's reason), :class:`CallTimeout`
        if nobody answers within ``timeout``, :class:`PeerGone` if the connection drops.
        """
        path = _check_address(address, curve=curve is not None)
        if not identity or identity[0] == 0 or len(identity) > 255:
            raise ValueError("identity must be 1..255 bytes and not start with a zero byte")
        loop = asyncio.get_running_loop()
        full_hello = {
            "protocol": env.PROTOCOL_VERSION,
            "api_version": _api_version(),
            "takopi_version": _takopi_version(),
            "python": sys.version.split()[0],
            "pid": os.getpid(),
            **hello,
            "identity": identity.hex(),
        }
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
        _configure(sock, max_frame_bytes)
        sock.setsockopt(zmq.ROUTING_ID, identity)
        if curve is not None:
            apply_client(sock, curve)
        answer: asyncio.Future[list[Any]] = loop.create_future()
        early: list[bytes] = []
        peer: Peer | None = None
        watch: _PidWatch | None = None

        def on_message(frames: list[bytes]) -> None:
            if len(frames) != 1:
                log.warning("rpc.frame.garbage", reason=f"{len(frames)} frames from supervisor")
                return
            if peer is not None:
                peer._receive(frames[0])
                return
            if answer.done():
                # The supervisor may call right after WELCOME, in the same burst: keep those
                # frames for the peer instead of dropping them.
                if len(early) < 10_000:
                    early.append(frames[0])
                return
            try:
                msg = env.unpack(frames[0])
            except ValueError as exc:
                log.warning("rpc.frame.garbage", error=str(exc))
                return
            if msg[1] in (env.WELCOME, env.REFUSE):
                answer.set_result(msg)

        def on_monitor(event: int, value: int) -> None:
            if event & _HANDSHAKE_FAILED:
                if not answer.done():
                    answer.set_exception(
                        HandshakeRefused("transport handshake failed (CURVE key not allowed?)")
                    )
                return
            if peer is not None:
                peer.close(PeerGone("connection to the supervisor lost"))
            elif not answer.done():
                answer.set_exception(PeerGone("connection to the supervisor lost"))

        driver = SocketDriver(sock, loop, on_message)
        monitor = MonitorDriver(sock, loop, zmq.EVENT_DISCONNECTED | _HANDSHAKE_FAILED, on_monitor)

        def teardown(_peer: Peer | None = None) -> None:
            monitor.close()
            driver.close()
            if watch is not None:
                watch.close()

        try:
            sock.connect(address)
            driver.send([env.pack(env.HELLO, full_hello)])
            try:
                msg = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                raise CallTimeout(
                    f"no answer to HELLO from {address} within {timeout:g}s"
                ) from None
        except BaseException:
            teardown()
            raise
        if msg[1] == env.REFUSE:
            teardown()
            reason = str(msg[2]) if len(msg) > 2 else "refused"
            log.warning("rpc.handshake.refused_by_supervisor", reason=reason)
            raise HandshakeRefused(reason)
        welcome = msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else None
        if welcome is None:
            teardown()
            raise ProtocolError("malformed WELCOME")

        def send(frame: bytes) -> None:
            try:
                driver.send([frame])
            except Unreachable:
                raise PeerGone("socket closed") from None

        peer = Peer(send, info=welcome, identity=identity, name="supervisor")
        peer._detach = teardown
        peer.max_frame_bytes = max_frame_bytes
        if early:
            # Dispatched on the next loop iteration: the caller registers its handlers
            # synchronously right after connect() returns.
            replay = list(early)
            early.clear()
            p0 = peer

            def replay_early() -> None:
                for frame in replay:
                    p0._receive(frame)

            loop.call_soon(replay_early)
        sup_pid = welcome.get("pid")
        if path is not None and type(sup_pid) is int and sup_pid > 0:
            p = peer
            watch = _PidWatch(
                loop, sup_pid, lambda: p.close(PeerGone(f"supervisor process {sup_pid} exited"))
            )
        return peer


def _api_version() -> int:
    from takopi.api import TAKOPI_PLUGIN_API_VERSION

    return TAKOPI_PLUGIN_API_VERSION


def _takopi_version() -> str:
    import takopi

    return str(getattr(takopi, "__version__", "unknown"))


__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Authenticator", "DealerEndpoint", "RouterEndpoint"]
