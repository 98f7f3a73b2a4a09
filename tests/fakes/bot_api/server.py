"""The fake Bot API server: its parts put together, and its HTTP lifecycle."""

from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from .faults import FaultsMixin
from .files import FilesMixin
from .http_handler import _Handler
from .messages import MessagesMixin
from .records import BotApiError
from .topics import TopicsMixin


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the chaos tests SIGKILL transport workers) resets
        # its connection: expected, not worth a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class BotApiServer(FilesMixin, TopicsMixin, MessagesMixin, FaultsMixin):
    """The fake Bot API. ``start()`` returns the base URL to use as ``api_url``."""

    def start(self) -> str:
        """Start serving on an ephemeral 127.0.0.1 port; returns the base URL."""
        server = self

        class Handler(_Handler):
            api = server

        httpd = _HttpServer(("127.0.0.1", 0), Handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="fake-bot-api", daemon=True
        )
        self._thread.start()
        host, port = httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and wake up pending long polls."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> BotApiServer:
        if not self.base_url:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        """Dispatch one Bot API call (raises BotApiError for API-level failures)."""
        fn = getattr(self, f"_api_{method}", None)
        if fn is None:
            raise BotApiError(404, "Not Found: method not found")
        return fn(params)


__all__ = ["BotApiServer"]
