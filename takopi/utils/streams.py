"""Byte-stream helpers: unbounded line iteration and a stderr drain that only logs."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream

from takopi.logging import get_logger, pipeline_level

_log = get_logger(__name__)

_READ_SIZE = 65536


async def iter_bytes_lines(stream: ByteReceiveStream) -> AsyncIterator[bytes]:
    """Yield each line of ``stream`` (without the trailing ``\\n``), of any length.

    A final line without a newline is yielded at end of stream. A stream that errors
    (``BrokenResourceError``, ``ClosedResourceError``) is treated as ended.
    """
    buf = bytearray()
    while True:
        try:
            chunk = await stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            break
        start = 0
        idx = chunk.find(b"\n")
        if idx < 0:
            buf += chunk
            continue
        # Finish the pending partial line, then emit every complete line in this chunk.
        buf += chunk[:idx]
        yield bytes(buf)
        buf.clear()
        start = idx + 1
        while True:
            idx = chunk.find(b"\n", start)
            if idx < 0:
                break
            yield chunk[start:idx]
            start = idx + 1
        buf += chunk[start:]
    if buf:
        yield bytes(buf)


async def drain_stderr(
    stream: ByteReceiveStream,
    *,
    tag: str,
    logger: Any = None,
    tail: deque[str] | None = None,
) -> None:
    """Read ``stream`` to its end, logging each line at the pipeline level.

    stderr is diagnostics for operators only: it goes to the log (``subprocess.stderr``) and
    optionally into ``tail`` (a bounded deque), never into anything shown to a user.
    """
    log = logger if logger is not None else _log
    level = pipeline_level()
    emit = getattr(log, level, log.debug)
    try:
        async for raw in iter_bytes_lines(stream):
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not text.strip():
                continue
            if tail is not None:
                tail.append(text)
            emit("subprocess.stderr", tag=tag, line=text)
    except Exception as exc:  # never let a diagnostics reader kill a run
        log.debug("subprocess.stderr_failed", tag=tag, error=repr(exc))


__all__ = ["drain_stderr", "iter_bytes_lines"]
