"""A scripted fake model provider speaking streamed SSE on 127.0.0.1.

Wire formats (all streamed as ``text/event-stream``):

* OpenAI Responses — ``POST /v1/responses`` (codex, pi ``openai-responses``); the full event
  set is sent unless the server was built with ``minimal=True``.
* OpenAI Chat Completions — ``POST /v1/chat/completions`` (opencode, pi ``openai-completions``).
* Anthropic Messages — ``POST /v1/messages`` (claude, pi ``anthropic-messages``).

The behaviour is scripted from the prompt, i.e. the last user text that does not start with
``<`` (CLIs inject ``<environment_context>``/``<system-reminder>`` blocks; opencode wraps the
prompt in literal double quotes, which are stripped). Keywords, each on its own line:

* ``RUN: <cmd>`` — request the CLI's shell tool (found by name in the request's tool list) for
  every ``RUN:`` line in turn, then answer with the tool outputs once all results came back.
* ``HISTORY`` — answer listing every earlier user prompt seen in the request.
* ``FAIL400`` — reply HTTP 400 with a JSON error body.
* ``SLEEP <seconds>`` — hold the turn that long (or until the server stops), then answer.
* ``THINK`` — prefix the answer with a reasoning/thinking block.

Anything else gets ``ok: <prompt>`` as the answer. Every request is recorded (path, headers
without credentials, JSON body) in :attr:`FakeModelServer.requests`.

Run standalone with ``python -m tests.fakes.model_server [--port N] [--minimal]``. Parts:
:mod:`tests.fakes.model_script` (parsing a request, deciding the turn),
:mod:`tests.fakes.model_sse` (the streams of each wire format), this module (the HTTP server).
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.model_script import (
    Conversation,
    Script,
    parse_conversation,
    plan_turn,
)
from tests.fakes.model_sse import anthropic_events, chat_events, responses_events

__all__ = [
    "Conversation",
    "FakeModelServer",
    "RecordedRequest",
    "Script",
    "parse_conversation",
    "plan_turn",
]

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received.

    Credential headers are removed from ``headers``; only their names are kept, in
    ``credential_headers``. ``wire``/``prompt``/``action`` are set for model requests.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    wire: str | None = None
    prompt: str | None = None
    action: str | None = None
    credential_headers: tuple[str, ...] = ()

    def user_texts(self) -> list[str]:
        """All user text blocks in the request, in order (empty for non-model requests)."""
        if self.wire is None or not isinstance(self.body, dict):
            return []
        return parse_conversation(self.wire, self.body).user_texts


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------

_WIRE_BY_PATH = {
    "/v1/responses": "responses",
    "/responses": "responses",
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/messages": "anthropic",
    "/messages": "anthropic",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            sys.stderr.write("fake-model: " + (format % args) + "\n")

    # -- request plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, frames: Iterator[str]) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in frames:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record(self, body: Any, **extra: Any) -> RecordedRequest:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k: v for k, v in headers.items() if k not in SECRET_HEADERS},
            body=body,
            credential_headers=tuple(sorted(k for k in headers if k in SECRET_HEADERS)),
            **extra,
        )
        self.server.fake._add(rec)
        return rec

    # -- verbs --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._record(None)
        if path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": f"no route for GET {path}"}})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._record(raw.decode("utf-8", "replace"))
            self._send_json(400, {"error": {"message": "fake model: body is not JSON"}})
            return
        wire = _WIRE_BY_PATH.get(path.rstrip("/"))
        if wire is None or not isinstance(body, dict):
            self._record(body)
            self._send_json(404, {"error": {"message": f"no route for POST {path}"}})
            return
        fake = self.server.fake
        seq = fake._next_seq()
        conv = parse_conversation(wire, body)
        script = plan_turn(conv, seq)
        self._record(body, wire=wire, prompt=conv.prompt, action=script.action)
        if script.action == "fail":
            self._send_error_400(wire, script.text)
            return
        if script.action == "sleep":
            fake._stopping.wait(script.sleep)
        self._send_sse(self._frames(wire, script, seq, body))

    def _send_error_400(self, wire: str, message: str) -> None:
        if wire == "anthropic":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": message},
            }
        else:
            payload = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "fake_fail400",
                }
            }
        self._send_json(400, payload)

    def _frames(self, wire: str, script: Script, seq: int, body: dict[str, Any]) -> Iterator[str]:
        model = str(body.get("model") or "fake-model")
        if wire == "responses":
            return responses_events(script, seq, model, self.server.fake.minimal)
        if wire == "chat":
            opts = body.get("stream_options")
            include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
            return chat_events(script, seq, model, include_usage)
        return anthropic_events(script, seq, model)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-stream on cancellation; that is expected, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeModelServer:
    """The fake provider; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        minimal: bool = False,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.minimal = minimal
        self.verbose = verbose
        self._requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeModelServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        server = _Server((self.host, self.requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wake every request held by ``SLEEP``."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    # -- recording ----------------------------------------------------------------------------

    def _add(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _next_seq(self) -> int:
        with self._cond:
            self._seq += 1
            return self._seq

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far."""
        with self._cond:
            return list(self._requests)

    def model_requests(self) -> list[RecordedRequest]:
        """Requests to one of the model endpoints."""
        return [r for r in self.requests if r.wire is not None]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._cond:
            self._requests.clear()

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 10.0
    ) -> RecordedRequest | None:
        """Block until a recorded request matches ``predicate`` (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self._requests:
                    if predicate(rec):
                        return rec
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, printing the base URL on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--minimal", action="store_true", help="Responses: only the two events")
    parser.add_argument("--record", help="append every request as JSON lines to this file")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeModelServer(args.host, args.port, minimal=args.minimal, verbose=args.verbose)
    if args.record:
        record_path = args.record
        add = fake._add

        def add_and_write(rec: RecordedRequest) -> None:
            add(rec)
            with open(record_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec.__dict__, default=str) + "\n")

        fake._add = add_and_write  # type: ignore[method-assign]
    fake.start()
    print(fake.base_url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
