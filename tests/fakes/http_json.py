"""The JSON answer the fake HTTP servers send (stdlib ``BaseHTTPRequestHandler``)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    """Answer ``status`` with ``payload`` as JSON; a client that went away only closes the
    connection (tests disconnect on purpose)."""
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except OSError:
        handler.close_connection = True


__all__ = ["send_json"]
