"""The worker's end of the RPC link: one DEALER connected to the supervisor's ROUTER
(:mod:`takopi.rpc.endpoint` explains the socket options and the handshake)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import zmq

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.curve import CurveClient, apply_client
from takopi.rpc.errors import CallTimeout, HandshakeRefused, PeerGone, ProtocolError
from takopi.rpc.peer import DEFAULT_MAX_FRAME_BYTES, Peer
from takopi.rpc.sockets import PidWatch, check_address, configure
from takopi.rpc.zsock import MonitorDriver, SocketDriver, Unreachable

log = get_logger("takopi.rpc")

_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


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
        path = check_address(address, curve=curve is not None)
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
        configure(sock, max_frame_bytes)
        sock.setsockopt(zmq.ROUTING_ID, identity)
        if curve is not None:
            apply_client(sock, curve)
        answer: asyncio.Future[list[Any]] = loop.create_future()
        early: list[bytes] = []
        peer: Peer | None = None
        watch: PidWatch | None = None

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
            watch = PidWatch(
                loop, sup_pid, lambda: p.close(PeerGone(f"supervisor process {sup_pid} exited"))
            )
        return peer


def _api_version() -> int:
    from takopi.api import TAKOPI_PLUGIN_API_VERSION

    return TAKOPI_PLUGIN_API_VERSION


def _takopi_version() -> str:
    import takopi

    return str(getattr(takopi, "__version__", "unknown"))


__all__ = ["DealerEndpoint"]
