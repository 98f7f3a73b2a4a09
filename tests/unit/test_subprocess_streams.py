"""Line iteration over byte streams and the stderr drain."""

from __future__ import annotations

from collections import deque

import anyio
import pytest

from takopi.utils.streams import drain_stderr, iter_bytes_lines

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


class ChunkStream(anyio.abc.ByteReceiveStream):
    """Delivers the given chunks one receive() at a time, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = deque(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._chunks:
            raise anyio.EndOfStream
        return self._chunks.popleft()

    async def aclose(self) -> None:
        self._chunks.clear()


async def lines_of(chunks: list[bytes]) -> list[bytes]:
    return [line async for line in iter_bytes_lines(ChunkStream(chunks))]


async def test_lines_split_across_chunks() -> None:
    chunks = [b"ab", b"c\nde", b"f\n\ng", b"hi\nlast"]
    assert await lines_of(chunks) == [b"abc", b"def", b"", b"ghi", b"last"]


async def test_many_lines_in_one_chunk_and_trailing_newline() -> None:
    assert await lines_of([b"1\n2\n3\n"]) == [b"1", b"2", b"3"]
    assert await lines_of([]) == []


async def test_line_longer_than_any_buffer() -> None:
    big = b"x" * (5 * 1024 * 1024)
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)] + [b"\nnext\n"]
    result = await lines_of(chunks)
    assert [len(line) for line in result] == [len(big), 4]


async def test_drain_stderr_logs_and_keeps_a_bounded_tail() -> None:
    logged: list[tuple[str, dict[str, object]]] = []

    class Sink:
        def debug(self, event: str, **kw: object) -> None:
            logged.append((event, kw))

        info = debug

    tail: deque[str] = deque(maxlen=2)
    stream = ChunkStream([b"one\r\n", b"\n", b"two\nthree\n"])
    await drain_stderr(stream, tag="eng", logger=Sink(), tail=tail)
    assert [kw["line"] for _, kw in logged] == ["one", "two", "three"]
    assert {event for event, _ in logged} == {"subprocess.stderr"}
    assert list(tail) == ["two", "three"]


async def test_drain_stderr_survives_a_broken_stream() -> None:
    class Broken(ChunkStream):
        async def receive(self, max_bytes: int = 65536) -> bytes:
            raise OSError("pipe exploded")

    events: list[str] = []

    class Sink:
        def debug(self, event: str, **kw: object) -> None:
            events.append(event)

        info = debug

    await drain_stderr(Broken([]), tag="eng", logger=Sink())  # must not raise
    assert events == ["subprocess.stderr_failed"]
