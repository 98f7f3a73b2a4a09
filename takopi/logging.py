"""structlog-based logging: ``get_logger(__name__).info("event", key=value)``.

Environment: ``TAKOPI_LOG_LEVEL`` (debug|info|warning|error, default info),
``TAKOPI_LOG_FORMAT`` (console|json, default console), ``TAKOPI_LOG_COLOR`` (force colour),
``TAKOPI_LOG_FILE`` (also append JSON lines there), ``TAKOPI_TRACE_PIPELINE`` (pipeline events at
info instead of debug). Every string that reaches a sink is scrubbed of bot tokens.
"""

from __future__ import annotations

import contextlib
import json
import logging as _stdlib_logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import IO, Any, TextIO

import structlog

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_BOT_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
_BARE_TOKEN_RE = re.compile(r"\b\d+:[A-Za-z0-9_-]{10,}\b")

_suppress_below: ContextVar[int] = ContextVar("takopi_suppress_below", default=0)
_extra_secrets: list[str] = []


def redact_text(text: str) -> str:
    """Replace Telegram bot tokens (and registered secrets) in ``text``."""
    for secret in _extra_secrets:
        if secret and secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = _BOT_TOKEN_RE.sub("bot[REDACTED]", text)
    return _BARE_TOKEN_RE.sub("[REDACTED_TOKEN]", text)


def redact(value: Any) -> Any:
    """Recursively redact secrets in strings inside dicts, lists, tuples, sets and bytes."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace")).encode()
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, set | frozenset):
        return {redact(v) for v in value}
    return value


def register_secret(secret: str | None) -> None:
    """Make sure ``secret`` (e.g. an API key from config) never reaches a log sink."""
    if secret and len(secret) >= 6 and secret not in _extra_secrets:
        _extra_secrets.append(secret)


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: redact(v) for k, v in event_dict.items()}


def _logger_name_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    name = event_dict.pop("_logger_name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


def _suppress_processor(_logger: Any, name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    floor = _suppress_below.get()
    if floor and _LEVELS.get(name, 20) < floor:
        raise structlog.DropEvent
    return event_dict


class _FileSink:
    """Appends every event as one JSON line to ``TAKOPI_LOG_FILE``."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] | None = None
        try:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
        except OSError:
            self._file = None

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if self._file is not None:
            try:
                self._file.write(json.dumps(event_dict, default=str) + "\n")
                self._file.flush()
            except (OSError, ValueError):
                pass
        return event_dict


class _SafeWriter:
    """A stream wrapper that swallows broken pipes (a closed terminal never crashes takopi)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: str) -> int:
        try:
            return self._stream.write(data)
        except (BrokenPipeError, ValueError, OSError):
            return 0

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass


def pipeline_level() -> str:
    """Level for pipeline bookkeeping events (JSONL parsing, stderr lines…)."""
    return "info" if os.environ.get("TAKOPI_TRACE_PIPELINE") else "debug"


def setup_logging(
    *,
    debug: bool = False,
    level: str | None = None,
    fmt: str | None = None,
    stream: TextIO | None = None,
    log_file: str | None = None,
) -> None:
    """Configure structlog for this process. Safe to call more than once."""
    name = (level or os.environ.get("TAKOPI_LOG_LEVEL") or "info").lower()
    if debug:
        name = "debug"
    numeric = _LEVELS.get(name, 20)
    fmt = (fmt or os.environ.get("TAKOPI_LOG_FORMAT") or "console").lower()
    out = stream if stream is not None else sys.stdout
    color_env = os.environ.get("TAKOPI_LOG_COLOR")
    colors = color_env.lower() in {"1", "true", "yes"} if color_env else out.isatty()
    processors: list[Any] = [
        _suppress_processor,
        _logger_name_processor,
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.add_log_level,
    ]
    if fmt == "json":
        processors.append(structlog.processors.format_exc_info)
    processors.append(_redact_processor)
    file_path = log_file or os.environ.get("TAKOPI_LOG_FILE")
    if file_path:
        processors.append(_FileSink(file_path))
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer(default=str))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=colors))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_SafeWriter(out)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _stdlib_logging.getLogger("httpx").setLevel(_stdlib_logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger: ``log.info("event.name", key=value)``, ``log.bind(k=v)``."""
    # A lazy proxy: module-level loggers created at import time still follow a later
    # setup_logging() (binding here would freeze the configuration of that moment).
    if name:
        return structlog.get_logger(_logger_name=name)
    return structlog.get_logger()


def bind_run_context(**fields: Any) -> None:
    """Bind fields (chat_id, engine, resume, …) to every log event of this run's context."""
    structlog.contextvars.bind_contextvars(**fields)


def clear_context() -> None:
    """Forget fields bound with :func:`bind_run_context`."""
    structlog.contextvars.clear_contextvars()


@contextlib.contextmanager
def suppress_logs(level: str = "info") -> Iterator[None]:
    """Within the block, drop log events at or below ``level`` (default: debug and info)."""
    floor = _LEVELS.get(level.lower(), 20) + 1
    token = _suppress_below.set(floor)
    try:
        yield
    finally:
        _suppress_below.reset(token)


setup_logging()

__all__ = [
    "bind_run_context",
    "clear_context",
    "get_logger",
    "pipeline_level",
    "redact",
    "redact_text",
    "register_secret",
    "setup_logging",
    "suppress_logs",
]
