"""A fake OpenAI-compatible transcription server: a real HTTP server on 127.0.0.1.

It serves ``POST <prefix>/audio/transcriptions`` (``multipart/form-data`` with ``file`` and
``model``, as the OpenAI API documents) and answers ``{"text": ...}``. The transcript of an
upload is looked up by its exact bytes (``set_transcript``), else ``default_text``. It checks
``Authorization: Bearer <api_key>`` (401 with an OpenAI-shaped error otherwise), records every
request, and can fail the next requests with a status and an OpenAI error message.

Usage::

    with TranscriptionServer(api_key="sk-test") as srv:
        srv.set_transcript(b"voice-bytes", "fix the bug")
        base_url = srv.base_url               # "http://127.0.0.1:<port>/v1"
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.http_json import send_json
from tests.fakes.multipart import MultipartError, parse_multipart


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """One request as the server saw it."""

    path: str
    authorization: str | None
    model: str | None
    filename: str | None
    content: bytes
    fields: dict[str, str]


class TranscriptionServer:
    """See module docstring. ``prefix`` is the API root path (OpenAI's is ``/v1``)."""

    def __init__(
        self, *, api_key: str | None = "sk-test", prefix: str = "/v1", default_text: str = ""
    ) -> None:
        self.api_key = api_key
        self.prefix = prefix.rstrip("/")
        self.default_text = default_text
        self.requests: list[TranscriptionRequest] = []
        self._transcripts: dict[bytes, str] = {}
        self._failures: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> str:
        server = self

        class Handler(_Handler):
            fake = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, name="fake-transcription", daemon=True).start()
        host, port = httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}{self.prefix}"
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> TranscriptionServer:
        if not self.base_url:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------------------
    def set_transcript(self, audio: bytes, text: str) -> None:
        """Answer ``text`` for an upload of exactly ``audio``."""
        with self._lock:
            self._transcripts[audio] = text

    def fail_next(self, status: int = 500, message: str = "The server had an error") -> None:
        """The next request gets ``status`` with ``{"error": {"message": message}}``."""
        with self._lock:
            self._failures.append((status, message))

    # -- internals -----------------------------------------------------------------------
    def _answer(self, request: TranscriptionRequest) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(request)
            if self.api_key is not None and request.authorization != f"Bearer {self.api_key}":
                return 401, _error("Incorrect API key provided.", "invalid_request_error")
            if self._failures:
                status, message = self._failures.pop(0)
                return status, _error(message, "server_error")
            if not request.model:
                return 400, _error("you must provide a model parameter", "invalid_request_error")
            if request.filename is None:
                return 400, _error("you must provide a file", "invalid_request_error")
            return 200, {"text": self._transcripts.get(request.content, self.default_text)}


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Handler(BaseHTTPRequestHandler):
    fake: TranscriptionServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0] != f"{self.fake.prefix}/audio/transcriptions":
            self._reply(404, _error(f"Invalid URL (POST {self.path})", "invalid_request_error"))
            return
        try:
            fields, files = parse_multipart(self.headers.get("Content-Type") or "", body)
        except MultipartError as exc:
            self._reply(400, _error(f"bad multipart body: {exc}", "invalid_request_error"))
            return
        upload = files.get("file")
        request = TranscriptionRequest(
            path=self.path,
            authorization=self.headers.get("Authorization"),
            model=fields.get("model"),
            filename=upload.filename if upload is not None else None,
            content=upload.content if upload is not None else b"",
            fields=fields,
        )
        status, payload = self.fake._answer(request)
        self._reply(status, payload)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        send_json(self, status, payload)


__all__ = ["TranscriptionRequest", "TranscriptionServer"]
