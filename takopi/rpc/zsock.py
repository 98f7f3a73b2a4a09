"""Drive one ZeroMQ socket from one asyncio loop without ``zmq.asyncio``.

Receiving: the socket's ``FD`` is edge-triggered, so on every wake-up (and after every send,
which may consume the edge) we check ``EVENTS`` and drain with ``NOBLOCK`` until empty, in
bounded bursts. Sending: ``NOBLOCK`` first; on ``EAGAIN`` (high-water mark) the message joins an
ordered backlog per destination that is retried with a short backoff, so one slow peer never
blocks the others and order per peer is kept. Everything here runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from takopi.logging import get_logger

log = get_logger("takopi.rpc")

MAX_BURST = 1024
_RETRY_MIN = 0.0005
_RETRY_MAX = 0.05
# Plain ints: pyzmq's enum members cost an enum operation per use on the hot path.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)


class Unreachable(Exception):
    """A ROUTER_MANDATORY send found no route to the destination identity."""

    def __init__(self, key: bytes | None) -> None:
        super().__init__(key)
        self.key = key


class SocketDriver:
    """Owns ``sock`` on ``loop``: calls ``on_message(frames)`` for each inbound message.

    ``routed=True`` (ROUTER): the first frame of every outbound message is the destination and
    keys the backlog; ``on_unreachable(identity)`` is called when a backlogged message can no
    longer be routed.
    """

    def __init__(
        self,
        sock: zmq.Socket[Any],
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[list[bytes]], None],
        *,
        routed: bool = False,
        on_unreachable: Callable[[bytes | None], None] | None = None,
    ) -> None:
        self.sock = sock
        self.loop = loop
        self._on_message = on_message
        self._routed = routed
        self._on_unreachable = on_unreachable
        self._backlog: dict[bytes | None, deque[list[bytes]]] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_MIN
        self._drain_scheduled = False
        self._draining = False
        self.closed = False
        self._fd = sock.FD
        loop.add_reader(self._fd, self._drain)
        # The FD only signals *changes*: messages that arrived before we started watching (or
        # whose signal an earlier zmq call consumed) would otherwise never wake us.
        self._drain_scheduled = True
        loop.call_soon(self._drain)

    def send(self, frames: list[bytes]) -> None:
        """Queue ``frames`` for sending, in order. Raises ``Unreachable`` on EHOSTUNREACH."""
        if self.closed:
            raise Unreachable(frames[0] if self._routed else None)
        key = frames[0] if self._routed else None
        pending = self._backlog.get(key)
        if pending:
            pending.append(frames)
            return
        sock = self.sock
        try:
            # As send_multipart does: the high-water mark is checked on the first part, so
            # EAGAIN means nothing of this message was queued. Frames are always bytes here.
            for frame in frames[:-1]:
                sock.send(frame, _NOBLOCK | _SNDMORE)
            sock.send(frames[-1], _NOBLOCK)
        except zmq.Again:
            self._backlog.setdefault(key, deque()).append(frames)
            self._schedule_retry()
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise Unreachable(key) from None
            raise
        finally:
            # A send may consume the FD's edge; inside _drain the loop re-checks anyway.
            if not self._draining:
                self._check_events()

    def _check_events(self) -> None:
        if self._drain_scheduled or self.closed:
            return
        try:
            events = self.sock.get(_EVENTS)
        except zmq.ZMQError:
            return
        if events & _POLLIN:  # type: ignore[operator]  # EVENTS is an int option
            self._drain_scheduled = True
            self.loop.call_soon(self._drain)

    def drain_now(self, limit: int = 100_000) -> int:
        """Dispatch every message already queued for us, now (at most ``limit``); how many."""
        count = 0
        sock = self.sock
        self._draining = True
        try:
            while count < limit and not self.closed:
                try:
                    if not sock.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                        break
                    frames = sock.recv_multipart(_NOBLOCK)
                except zmq.ZMQError:  # Again included
                    break
                count += 1
                try:
                    self._on_message(frames)
                except Exception:
                    log.exception("rpc.socket.dispatch_failed")
        finally:
            self._draining = False
        return count

    def _drain(self) -> None:
        self._drain_scheduled = False
        sock = self.sock
        self._draining = True
        try:
            for _ in range(MAX_BURST):
                if self.closed:
                    return
                try:
                    if not sock.get(_EVENTS) & _POLLIN:  # type: ignore[operator]
                        return
                    frames = sock.recv_multipart(_NOBLOCK)
                except zmq.Again:
                    return
                except zmq.ZMQError as exc:
                    log.warning("rpc.socket.recv_failed", error=str(exc))
                    return
                try:
                    self._on_message(frames)
                except Exception:  # the dispatcher must never kill the reader
                    log.exception("rpc.socket.dispatch_failed")
        finally:
            self._draining = False
        # burst limit reached: let other callbacks run, then continue
        if not self._drain_scheduled and not self.closed:
            self._drain_scheduled = True
            self.loop.call_soon(self._drain)

    def _schedule_retry(self) -> None:
        if self._retry is None and not self.closed:
            self._retry = self.loop.call_later(self._retry_delay, self._flush_backlog)
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    def _flush_backlog(self) -> None:
        self._retry = None
        for key in list(self._backlog):
            queue = self._backlog[key]
            while queue:
                try:
                    self.sock.send_multipart(queue[0], zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError as exc:
                    del self._backlog[key]
                    if exc.errno == errno.EHOSTUNREACH and self._on_unreachable is not None:
                        self._on_unreachable(key)
                    else:
                        log.warning("rpc.socket.send_failed", error=str(exc))
                    break
                queue.popleft()
            if not queue:
                self._backlog.pop(key, None)
        if self._backlog:
            self._schedule_retry()
        else:
            self._retry_delay = _RETRY_MIN
        self._check_events()

    def backlogged(self, key: bytes | None) -> bool:
        """Whether messages for ``key`` wait in the backlog (the high-water mark was hit)."""
        return bool(self._backlog.get(key))

    def discard(self, key: bytes | None) -> None:
        """Forget queued messages for ``key`` (its peer is gone)."""
        self._backlog.pop(key, None)

    def close(self) -> None:
        """Stop reading and close the socket (LINGER is 0: pending output is dropped)."""
        if self.closed:
            return
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        try:
            self.loop.remove_reader(self._fd)
        except Exception:  # loop already closed
            pass
        self.sock.close(linger=0)


class MonitorDriver:
    """Reads a socket's monitor events on the loop and hands ``(event, value)`` to a callback."""

    def __init__(
        self,
        sock: zmq.Socket[Any],
        loop: asyncio.AbstractEventLoop,
        events: int,
        on_event: Callable[[int, int], None],
    ) -> None:
        from zmq.utils.monitor import parse_monitor_message

        self._parse = parse_monitor_message
        self._sock = sock
        self._on_event = on_event
        self._mon = sock.get_monitor_socket(events)
        self._driver = SocketDriver(self._mon, loop, self._handle)

    def _handle(self, frames: list[bytes]) -> None:
        try:
            info = self._parse(frames)
        except Exception:
            return
        self._on_event(int(info["event"]), int(info.get("value") or 0))

    def close(self) -> None:
        """Stop monitoring (call before closing the monitored socket)."""
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._driver.close()


__all__ = ["MAX_BURST", "MonitorDriver", "SocketDriver", "Unreachable"]
