"""Control socket server for ``takopictl``.

Socket: ``<runtime dir>/control.sock`` (unix stream, mode 0600 in a 0700 dir); connections from
another uid are refused (``SO_PEERCRED``).

Protocol: newline-delimited JSON, UTF-8. Each request is one line, answered by one line, in order;
a connection may carry several requests. Requests larger than 64 KiB are refused.

Request::

    {"verb": "<name>", "args": {...}, "id": <any, optional, echoed back>}

Response::

    {"ok": true,  "id": ..., "result": {...}}
    {"ok": false, "id": ..., "error": "<human readable message>", "code": "<short code>"}

Error codes: ``bad_request`` (not JSON / not an object / bad args), ``unknown_verb``,
``failed`` (the verb raised).

Verbs (see ``takopi/supervisor/verbs/`` for each handler):

- ``status`` ``{}`` → ``{"pid", "state": "starting"|"running"|"reloading"|"stopping",
  "uptime_s", "config_path", "transport", "runtime_dir", "state_dir", "pending_deliveries",
  "runs", "workers": [{"name", "kind", "id", "state": "starting"|"ready"|"unresponsive"|
  "exited"|"backoff"|"quarantined"|"disabled"|"stopped" (a :class:`~takopi.supervisor.watcher.
  WorkerState`), "pid", "python", "restarts", "last_exit",
  "last_error", "uptime_s", "identity", "status", "issue"}], "helpers": [{"name":
  "zygote"|"standby", "pid"}]}``
- ``restart`` ``{"names": [str] (empty = all workers), "force": bool, "wait_timeout":
  float = 600}`` → ``{"restarted": [names], "waited": int, "cancelled": int}``. A targeted
  engine first stops taking new runs (they queue); without ``force`` its runs in flight
  finish (``waited`` of them; still running after ``wait_timeout`` ⇒ error ``failed``,
  nothing restarted); with ``force`` they are cancelled (``cancelled``; each gets its
  terminal reply) and the worker is SIGKILLed; quarantine / EX_CONFIG are cleared. The
  answer comes once the engines' new workers are ready; then the queued runs go on.
  Unknown names ⇒ error ``bad_request``.
- ``stop`` ``{}`` → ``{"stopping": true}`` (graceful shutdown, as SIGTERM).
- ``reload`` ``{}`` → ``{"reloaded": bool, "error": str|null, "restart_required": [names]}``.
- ``logs`` ``{"name": str, "lines": int = 100}`` → ``{"name", "pid", "lines": [str]}``
  (the worker's recent stdout/stderr; ``name`` may be ``"supervisor"`` for the supervisor's own
  recent log lines).
- ``runs`` ``{}`` → ``{"runs": [{"run_id", "engine", "transport", "thread", "state", "age_s",
  "events", "channel_id", "message_id", "resume_line"}], "pending_deliveries": [delivery]}``
- ``cancel`` ``{"run_id": str}`` → ``{"cancelled": bool}``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream

from takopi.logging import get_logger

log = get_logger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A verb rejected its arguments; ``code`` goes into the response."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end of a unix socket (Linux SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    uid: int
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer:
    """Serves the control socket; ``handlers`` maps verb name to an async handler."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers = handlers

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind (replacing a stale socket file), then serve until cancelled."""
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        task_status.started()
        try:
            async with listener:
                await listener.serve(self._connection)
        finally:
            try:
                self.path.unlink()
            except OSError:
                pass

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            raw_sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            uid = peer_uid(raw_sock)
            if uid != os.getuid():
                log.warning("control.refused_peer", uid=uid)
                return
            buffer = b""
            try:
                while True:
                    try:
                        chunk = await stream.receive(65536)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            response = await self.dispatch(line)
                            await stream.send(json.dumps(response).encode() + b"\n")
                    if len(buffer) > MAX_REQUEST_BYTES:
                        await stream.send(
                            json.dumps(
                                {"ok": False, "error": "request too large", "code": "bad_request"}
                            ).encode()
                            + b"\n"
                        )
                        return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        """Decode one request line and run its verb; never raises."""
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "request is not valid JSON", "code": "bad_request"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request must be a JSON object", "code": "bad_request"}
        req_id = request.get("id")
        verb = request.get("verb")
        args = request.get("args") or {}
        if not isinstance(args, dict):
            return {
                "ok": False,
                "id": req_id,
                "error": "args must be an object",
                "code": "bad_request",
            }
        handler = self.handlers.get(verb) if isinstance(verb, str) else None
        if handler is None:
            return {
                "ok": False,
                "id": req_id,
                "error": f"unknown verb {verb!r}; known: {', '.join(sorted(self.handlers))}",
                "code": "unknown_verb",
            }
        try:
            result = await handler(args)
        except ControlError as exc:
            return {"ok": False, "id": req_id, "error": str(exc), "code": exc.code}
        except Exception as exc:
            log.exception("control.verb_failed", verb=verb)
            return {
                "ok": False,
                "id": req_id,
                "error": f"{type(exc).__name__}: {exc}",
                "code": "failed",
            }
        return {"ok": True, "id": req_id, "result": result}


def request(
    path: Path, verb: str, args: dict[str, Any] | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """Blocking client helper: send one request, return the decoded response."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"verb": verb, "args": args or {}}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionError("control socket closed without an answer")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("control socket answer is not a JSON object")
    return answer


__all__ = ["MAX_REQUEST_BYTES", "ControlError", "ControlServer", "peer_uid", "request"]
