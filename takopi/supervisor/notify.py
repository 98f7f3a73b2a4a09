"""sd_notify without libsystemd: datagrams to ``$NOTIFY_SOCKET``.

Messages: ``READY=1`` (transport + engines ready), ``STATUS=...``, ``WATCHDOG=1``,
``RELOADING=1`` (+ ``MONOTONIC_USEC``), ``STOPPING=1``. Without ``NOTIFY_SOCKET`` every call is a
no-op. Failures are logged, never raised: systemd being gone must not stop the service.
"""

from __future__ import annotations

import os
import socket
import time

from takopi.logging import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends sd_notify messages to the socket named by ``NOTIFY_SOCKET`` (read once)."""

    def __init__(self, address: str | None = None) -> None:
        if address is None:
            address = os.environ.get("NOTIFY_SOCKET") or None
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self._address = address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Half of ``WATCHDOG_USEC`` in seconds (if the watchdog applies to this pid)."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
            return None
        try:
            return max(0.05, int(usec) / 2_000_000)
        except ValueError:
            return None

    def send(self, *lines: str) -> bool:
        """Send one datagram made of ``lines``; False when disabled or on error."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify.failed", error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (optionally with a STATUS line)."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """``STATUS=<text>``."""
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1`` (call from the event loop so a hung loop stops petting)."""
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """``RELOADING=1`` with the monotonic timestamp systemd expects."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """``STOPPING=1``."""
        return self.send("STOPPING=1")

    def close(self) -> None:
        """Close the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["Notifier"]
