"""The HTTP side of the fake Bot API: ``/bot<token>/<method>`` (query, JSON, form or
multipart parameters) and ``/file/bot<token>/<path>`` downloads, with the injected faults
applied before the call reaches the server."""

from __future__ import annotations

import json
import math
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.fakes.http_json import send_json
from tests.fakes.multipart import MultipartError, parse_multipart

from .records import BotApiError

if TYPE_CHECKING:
    from .server import BotApiServer


class _Handler(BaseHTTPRequestHandler):
    api: BotApiServer
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: with Nagle on, the body waits for the client's delayed
    # ACK of the headers (~40 ms on Linux) and every call would look 40 ms slower than it is
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parsed = urlparse(self.path)
        parts = parsed.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(parts) >= 3 and parts[0] == "file" and parts[1].startswith("bot"):
            self._serve_file(parts[1][3:], unquote("/".join(parts[2:])))
            return
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        token, method = parts[0][3:], parts[1]
        if token != self.api.token:
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if body:
            ctype = self.headers.get("Content-Type") or ""
            try:
                if "json" in ctype:
                    loaded = json.loads(body)
                    if not isinstance(loaded, dict):
                        raise ValueError("not an object")
                    params.update(loaded)
                elif ctype.startswith("multipart/form-data"):
                    fields, files = parse_multipart(ctype, body)
                    params.update(fields)
                    params.update(files)
                else:
                    params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
            except (ValueError, MultipartError):
                self._reply(
                    400, {"ok": False, "error_code": 400, "description": "Bad Request: bad body"}
                )
                return
        with self.api._cond:
            self.api.requests.append((method, params))
        fault = self.api._take_fault(method, params)
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "429":
                payload: dict[str, Any] = {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry later",
                }
                if fault.retry_after is not None:
                    payload["parameters"] = {"retry_after": fault.retry_after}
                    payload["description"] = f"Too Many Requests: retry after {fault.retry_after}"
                self._record_error(method, 429, payload["description"])
                self._reply(429, payload)
                return
            elif fault.kind == "5xx":
                self._record_error(method, fault.status, "Internal Server Error")
                self._reply(
                    fault.status,
                    {
                        "ok": False,
                        "error_code": fault.status,
                        "description": "Internal Server Error",
                    },
                )
                return
            elif fault.kind == "error":
                self._record_error(method, 400, fault.description)
                self._reply(400, {"ok": False, "error_code": 400, "description": fault.description})
                return
        wait = self.api._admit(method, params)
        if wait is not None:
            retry_after = max(1, math.ceil(wait))
            description = f"Too Many Requests: retry after {retry_after}"
            self._record_error(method, 429, description)
            self._reply(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": description,
                    "parameters": {"retry_after": retry_after},
                },
            )
            return
        try:
            result = self.api.handle(method, params)
        except BotApiError as exc:
            self._record_error(method, exc.status, exc.description)
            payload = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                payload["parameters"] = exc.parameters
            self._reply(exc.status, payload)
            return
        except Exception as exc:  # a bug in the fake: surface it as a 500
            self._record_error(method, 500, repr(exc))
            self._reply(500, {"ok": False, "error_code": 500, "description": repr(exc)})
            return
        self._reply(200, {"ok": True, "result": result})

    def _serve_file(self, token: str, file_path: str) -> None:
        """``GET /file/bot<token>/<file_path>``: the raw bytes (faults: method
        ``downloadFile``)."""
        if token != self.api.token:
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        with self.api._cond:
            self.api.requests.append(("downloadFile", {"file_path": file_path}))
        fault = self.api._take_fault("downloadFile", {})
        if fault is not None and fault.kind in ("5xx", "error", "429"):
            status = {"5xx": fault.status, "error": 400, "429": 429}[fault.kind]
            self._record_error("downloadFile", status, fault.description)
            self._reply(status, {"ok": False, "error_code": status, "description": "failed"})
            return
        content = self.api.download(file_path)
        if content is None:
            self._record_error("downloadFile", 404, "Not Found")
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    def _record_error(self, method: str, status: int, description: str) -> None:
        with self.api._cond:
            self.api.errors.append((method, status, description))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        send_json(self, status, payload)


__all__ = ["_Handler"]
