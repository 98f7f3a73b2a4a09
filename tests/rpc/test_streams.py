"""Streams: order with sequence numbers, credit-based flow control, early exit, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgpack
import pytest

from takopi.model import Action, ActionEvent, CompletedEvent, ResumeToken, StartedEvent
from takopi.rpc import PeerGone, ProtocolError, RemoteError
from takopi.rpc import envelope as env

from .conftest import Pair

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def run_events(n: int) -> AsyncIterator[Any]:
    token = ResumeToken("codex", "s1")
    yield StartedEvent(engine="codex", resume=token)
    for i in range(n):
        action = Action(id=str(i), kind="command", title=f"step {i}")
        yield ActionEvent(engine="codex", action=action, phase="completed", ok=True)
    yield CompletedEvent(engine="codex", ok=True, answer="done", resume=token)


async def test_stream_keeps_order_and_types(pair: Pair) -> None:
    pair.worker.register_stream("run", run_events)
    async with pair.sup.stream("run", 5000, window=64) as events:
        got = [e async for e in events]
    assert isinstance(got[0], StartedEvent)
    assert isinstance(got[-1], CompletedEvent)
    assert [e.action.id for e in got[1:-1]] == [str(i) for i in range(5000)]


async def test_slow_consumer_bounds_the_producer(pair: Pair) -> None:
    window = 16
    produced = 0

    async def numbers() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(400):
            produced += 1
            yield i

    pair.worker.register_stream("numbers", numbers)
    consumed = 0
    max_in_flight = 0
    async with pair.sup.stream("numbers", window=window) as items:
        async for item in items:
            assert item == consumed
            consumed += 1
            # give the producer every chance to run ahead
            for _ in range(5):
                await asyncio.sleep(0)
            if consumed % 50 == 0:
                await asyncio.sleep(0.02)
            max_in_flight = max(max_in_flight, produced - consumed)
    assert consumed == 400
    assert max_in_flight <= window
    assert max_in_flight >= window // 2  # the window is actually used (not lock-step)


async def test_early_exit_closes_remote_generator(pair: Pair) -> None:
    closed = asyncio.Event()
    produced = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal produced
        try:
            while True:
                produced += 1
                yield produced
                await asyncio.sleep(0)
        finally:
            closed.set()

    pair.worker.register_stream("endless", endless)
    async with pair.sup.stream("endless", window=8) as items:
        async for item in items:
            if item == 20:
                break
    await asyncio.wait_for(closed.wait(), 5)
    await asyncio.sleep(0.05)
    frozen = produced
    await asyncio.sleep(0.05)
    assert produced == frozen  # really stopped, not just ignored


async def test_cancelled_consumer_task_closes_remote_generator(pair: Pair) -> None:
    closed = asyncio.Event()
    first = asyncio.Event()

    async def blocked() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(60)
            yield 2
        finally:
            closed.set()

    pair.worker.register_stream("blocked", blocked)

    async def consume() -> None:
        async with pair.sup.stream("blocked") as items:
            async for _ in items:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 5)


async def test_producer_error_reaches_consumer_after_items(pair: Pair) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("engine crashed")

    pair.worker.register_stream("failing", failing)
    got: list[int] = []
    with pytest.raises(RemoteError, match="engine crashed") as info:
        async with pair.sup.stream("failing") as items:
            async for item in items:
                got.append(item)
    assert got == [1, 2]
    assert "RuntimeError" in (info.value.remote_traceback or "")


async def test_unknown_stream_and_unencodable_item(pair: Pair) -> None:
    async def bad_item() -> AsyncIterator[Any]:
        yield 1
        yield object()

    pair.worker.register_stream("bad_item", bad_item)
    with pytest.raises(RemoteError) as unknown:
        async with pair.sup.stream("nope") as items:
            async for _ in items:
                pass
    assert unknown.value.code == "unknown_method"
    with pytest.raises(RemoteError) as enc:
        async with pair.sup.stream("bad_item") as items:
            async for _ in items:
                pass
    assert enc.value.code == "encode_error"


async def test_sequence_gap_is_a_protocol_error(pair: Pair) -> None:
    """A forged STREAM_ITEMS frame with a wrong first sequence number breaks the stream."""
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[int]:
        yield 0
        await gate.wait()
        yield 1

    pair.worker.register_stream("slow", slow)
    with pytest.raises(ProtocolError, match="expected 1"):
        async with pair.sup.stream("slow") as items:
            async for item in items:
                assert item == 0
                sid = next(iter(pair.sup._streams.consumers))
                body = msgpack.packb([99], use_bin_type=True)
                pair.sup._receive(env.pack(env.STREAM_ITEMS, sid, 5, body))
    gate.set()


async def test_peer_loss_fails_open_stream(pair: Pair) -> None:
    async def forever() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(60)
        yield 2

    pair.worker.register_stream("forever", forever)
    with pytest.raises(PeerGone):
        async with pair.sup.stream("forever") as items:
            async for _ in items:
                await pair.worker.aclose("bye")


async def test_stream_consumed_from_foreign_thread_loop(pair: Pair) -> None:
    pair.worker.register_stream("run", run_events)
    result: dict[str, Any] = {}

    async def plugin_main() -> None:
        async with pair.sup.stream("run", 3000, window=32) as events:
            result["events"] = [e async for e in events]
        # and an early exit from a foreign loop
        async with pair.sup.stream("run", 10_000, window=4) as events:
            async for e in events:
                if isinstance(e, ActionEvent) and e.action.id == "3":
                    break
        result["still_works"] = await pair.sup.call("ping_me")

    pair.worker.register("ping_me", lambda: "pong")

    def thread_main() -> None:
        try:
            anyio.run(plugin_main)
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=thread_main)
    t.start()
    while t.is_alive():
        await asyncio.sleep(0.01)
    assert "error" not in result, result.get("error")
    assert len(result["events"]) == 3002
    assert [e.action.id for e in result["events"][1:-1]] == [str(i) for i in range(3000)]
    assert result["still_works"] == "pong"
    await asyncio.sleep(0.05)
    assert pair.worker._streams.producers == {}  # the early-exited producer is gone


async def test_large_items_are_split_into_frames_under_the_limit(pair: Pair) -> None:
    sizes: list[int] = []
    original = pair.worker._link.send_raw

    def spy(frame: bytes) -> None:
        sizes.append(len(frame))
        original(frame)

    pair.worker._link.send_raw = spy
    blob = b"x" * (1024 * 1024)

    async def blobs() -> AsyncIterator[bytes]:
        for i in range(10):
            yield bytes([i]) + blob

    pair.worker.register_stream("blobs", blobs)
    async with pair.sup.stream("blobs", window=16) as items:
        got = [item async for item in items]
    assert [g[0] for g in got] == list(range(10))
    assert all(len(g) == len(blob) + 1 for g in got)
    assert max(sizes) < 5 * 1024 * 1024  # 10 MiB never went out as one frame


@pytest.mark.parametrize("relay_window", [128, 16])
async def test_raw_relay_keeps_items_order_and_types(pair: Pair, relay_window: int) -> None:
    """A relay forwards stream batches still encoded (RawBatch); the far consumer gets the
    real objects in order. A window too small for a whole batch makes the relay split it."""
    from takopi.rpc.peer import RawBatch

    pair.worker.register_stream("run", run_events)
    seen: list[int] = []

    async def relay(n: int) -> AsyncIterator[Any]:
        async with pair.sup.stream_raw("run", n, window=64) as batches:
            async for batch in batches:
                assert type(batch) is RawBatch
                seen.append(batch.count)
                yield batch

    pair.sup.register_stream("relay", relay)
    async with pair.worker.stream("relay", 3000, window=relay_window) as events:
        got = [e async for e in events]
    assert isinstance(got[0], StartedEvent)
    assert isinstance(got[-1], CompletedEvent)
    assert [e.action.id for e in got[1:-1]] == [str(i) for i in range(3000)]
    assert sum(seen) == 3002
    assert len(seen) < 3002  # batched, not one frame per item
