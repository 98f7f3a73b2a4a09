"""Client side of the supervisor's control socket (schema: :mod:`takopi.supervisor.control`).

One request per connection: ``{"verb", "args"}`` as a JSON line, one JSON line back. The socket
lives in the supervisor's private runtime dir for the config (:func:`resolve_paths`); the server
must run as our uid (checked with ``SO_PEERCRED``, as the server checks us).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from takopi.config import resolve_config_path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_NO_ANSWER = 4
"""takopictl's exit codes (listed in its ``--help``)."""


class ControlError(Exception):
    """Base class for control-socket failures (``exit_code`` is takopictl's)."""

    exit_code = EXIT_NO_ANSWER


class NotRunning(ControlError):
    """No supervisor is listening for this config."""

    exit_code = EXIT_NOT_RUNNING


class NoAnswer(ControlError):
    """The supervisor did not answer in time or answered garbage."""

    exit_code = EXIT_NO_ANSWER


class RequestFailed(ControlError):
    """The supervisor answered with an error (``code``: bad_request, unknown_verb, failed)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def control_socket_path(config_path: str | os.PathLike[str] | None) -> Path:
    """Where the supervisor for ``config_path`` listens (nothing is created)."""
    from takopi.supervisor.paths import resolve_paths

    return resolve_paths(resolve_config_path(config_path), create=False).control_socket


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


class ControlClient:
    """Talks to the supervisor serving ``config_path``."""

    def __init__(
        self, config_path: str | os.PathLike[str] | None = None, *, timeout: float = 10.0
    ) -> None:
        self.config_path = resolve_config_path(config_path)
        self.socket_path = control_socket_path(self.config_path)
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if not self.socket_path.exists():
            raise NotRunning(
                f"takopi is not running for {self.config_path} (no control socket at "
                f"{self.socket_path})"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                raise NotRunning(
                    f"takopi is not running for {self.config_path} (stale control socket "
                    f"{self.socket_path})"
                ) from None
            if isinstance(exc, TimeoutError):
                raise NoAnswer(f"timed out connecting to {self.socket_path}") from None
            raise NoAnswer(f"cannot connect to {self.socket_path}: {exc}") from None
        uid = _peer_uid(sock)
        if uid is not None and uid != os.getuid():
            sock.close()
            raise NoAnswer(f"{self.socket_path} is served by uid {uid}, not by us; refusing")
        return sock

    def call(
        self, verb: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one request; the ``result`` object, or raise a :class:`ControlError`."""
        with self._connect() as sock:
            if timeout is not None:
                sock.settimeout(timeout)
            data = b""
            try:
                sock.sendall(json.dumps({"verb": verb, "args": args or {}}).encode() + b"\n")
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except TimeoutError:
                raise NoAnswer(
                    f"the supervisor did not answer {verb!r} within {timeout or self.timeout:g}s"
                ) from None
            except OSError as exc:
                raise NoAnswer(f"connection to the supervisor failed: {exc}") from None
        if not data:
            raise NoAnswer(f"the supervisor closed the connection without answering {verb!r}")
        try:
            response = json.loads(data)
        except ValueError:
            raise NoAnswer("the supervisor answered something that is not JSON") from None
        if not isinstance(response, dict):
            raise NoAnswer("the supervisor answered something that is not a JSON object")
        if not response.get("ok"):
            raise RequestFailed(
                str(response.get("error") or "request failed"), response.get("code")
            )
        result = response.get("result")
        return result if isinstance(result, dict) else {}


__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_RUNNING",
    "EXIT_NO_ANSWER",
    "EXIT_OK",
    "EXIT_USAGE",
    "ControlClient",
    "ControlError",
    "NoAnswer",
    "NotRunning",
    "RequestFailed",
    "control_socket_path",
]
