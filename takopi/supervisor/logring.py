"""The supervisor's own recent log lines, for ``takopictl logs supervisor``.

:class:`LogRing` is a text stream that passes everything through to the real log stream and
keeps the last lines (ANSI colour codes stripped) in a bounded deque.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from typing import TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DEFAULT_LINES = 2000
_MAX_PARTIAL = 64 * 1024


class LogRing:
    """A write-through stream remembering its last ``maxlen`` lines."""

    def __init__(self, stream: TextIO, maxlen: int = DEFAULT_LINES) -> None:
        self._stream = stream
        self._lines: deque[str] = deque(maxlen=maxlen)
        self._partial = ""
        self._lock = threading.Lock()  # log calls may come from worker threads

    def write(self, data: str) -> int:
        """Write ``data`` through and remember its complete lines."""
        with self._lock:
            text = self._partial + data
            *complete, self._partial = text.split("\n")
            if len(self._partial) > _MAX_PARTIAL:
                complete.append(self._partial)
                self._partial = ""
            for line in complete:
                self._lines.append(_ANSI.sub("", line))
        try:
            return self._stream.write(data)
        except (OSError, ValueError):
            return len(data)

    def flush(self) -> None:
        """Flush the underlying stream (errors ignored: logging never crashes us)."""
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        """Whether the underlying stream is a terminal (decides log colours)."""
        try:
            return bool(self._stream.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` complete lines, oldest first."""
        if lines <= 0:
            return []
        with self._lock:
            items = list(self._lines)
        return items[-lines:]


__all__ = ["DEFAULT_LINES", "LogRing"]
