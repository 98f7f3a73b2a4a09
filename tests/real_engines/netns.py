"""Optional network isolation: move the calling thread into a fresh loopback-only netns.

Linux network namespaces are per thread. :func:`isolated_network` unshares ``CLONE_NEWNET`` for
the current (main) thread, brings ``lo`` up, and on exit ``setns``-es back to the original
namespace. Sockets created and processes spawned from this thread in between (the fake model
server, the agent CLIs and all their children) can reach only 127.0.0.1, so a phone-home
cannot leave the machine. It needs root (or CAP_SYS_ADMIN); when unavailable the tests run
without it and rely on the CLIs' disable flags (see engines.py). Set
``TAKOPI_TEST_NO_NETNS=1`` to skip it (e.g. to strace the CLIs from outside).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


@contextmanager
def isolated_network() -> Iterator[bool]:
    """Yield True inside a loopback-only netns, or False if one could not be created."""
    if os.environ.get("TAKOPI_TEST_NO_NETNS"):
        yield False
        return
    try:
        original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            yield False
            return
        try:
            _bring_loopback_up()
        except OSError:
            _libc.setns(original, CLONE_NEWNET)
            yield False
            return
        try:
            yield True
        finally:
            if _libc.setns(original, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"could not return to the original netns: {os.strerror(err)}")
    finally:
        os.close(original)
