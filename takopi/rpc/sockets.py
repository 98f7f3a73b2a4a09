"""Socket-level helpers shared by both endpoints: address checks and ZeroMQ options."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket as _socket
from collections.abc import Callable
from typing import Any

import zmq

_HWM = 100_000


def check_address(address: str, *, curve: bool = False) -> str | None:
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


def live_listener(path: str) -> bool:
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


def configure(sock: zmq.Socket[Any], max_frame_bytes: int) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
    sock.setsockopt(zmq.SNDHWM, _HWM)
    sock.setsockopt(zmq.RCVHWM, _HWM)


class PidWatch:
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


__all__ = ["PidWatch", "check_address", "configure", "live_listener"]
