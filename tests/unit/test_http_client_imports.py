"""An HTTP request through httpx does not search sys.path for a module on the way.

httpcore asks ``import sniffio`` for the running async library on every request (several
times). Without sniffio installed that import fails each time, after a full search of
``sys.path`` (tens of microseconds per attempt). sniffio is a takopi dependency, so after the
first request no request looks for any module. Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _LookupRecorder(importlib.abc.MetaPathFinder):
    """Notes every module an import statement had to search for (cached ones never get here)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        self.names.append(fullname)
        return None  # let the real finders do the work


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_requests_after_the_first_import_nothing() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    recorder = _LookupRecorder()
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/"
            assert (await client.get(url)).text == "ok"  # first use: lazy imports are fine
            sys.meta_path.insert(0, recorder)
            try:
                for _ in range(3):
                    assert (await client.get(url)).text == "ok"
            finally:
                sys.meta_path.remove(recorder)
    finally:
        server.close()
        await server.wait_closed()
    assert recorder.names == []
