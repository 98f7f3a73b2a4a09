"""Requests, errors, notifications, ping, timeouts, cancellation and foreign-thread calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest

from takopi.config import ConfigError
from takopi.model import ResumeToken
from takopi.rpc import CallTimeout, PeerGone, ProtocolError, RemoteError
from takopi.rpc import envelope as env

from .conftest import Pair

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_round_trip_both_directions(pair: Pair) -> None:
    async def format_resume(token: ResumeToken, *, prefix: str = "") -> str:
        return f"{prefix}{token.engine} resume {token.value}"

    pair.worker.register("format_resume", format_resume)
    pair.sup.register("sum", lambda *xs: sum(xs))  # sync handler
    out = await pair.sup.call("format_resume", ResumeToken("codex", "t1"), prefix="`")
    assert out == "`codex resume t1"
    assert await pair.worker.call("sum", 1, 2, 3) == 6
    assert pair.sup.info["kind"] == "engine"
    assert "secret" not in pair.sup.info
    assert pair.worker.info["protocol"] == env.PROTOCOL_VERSION


async def test_handler_exception_carries_code_message_traceback(pair: Pair) -> None:
    def explode(x: int) -> int:
        raise ValueError(f"bad value {x}")

    pair.worker.register("explode", explode)
    with pytest.raises(RemoteError) as info:
        await pair.sup.call("explode", 7)
    err = info.value
    assert err.code == "handler_error"
    assert err.message == "bad value 7"
    assert err.remote_type == "builtins.ValueError"
    assert err.remote_traceback is not None
    assert "in explode" in err.remote_traceback
    assert err.retryable is False


async def test_registered_exception_is_reraised_as_real_class(pair: Pair) -> None:
    async def resolve_run_cwd() -> None:
        raise ConfigError("unknown project 'nope'")

    pair.sup.register("resolve_run_cwd", resolve_run_cwd)
    with pytest.raises(ConfigError, match="unknown project 'nope'") as info:
        await pair.worker.call("resolve_run_cwd")
    assert isinstance(info.value.__cause__, RemoteError)
    assert info.value.__cause__.code == "config_error"


async def test_retryable_attribute_travels(pair: Pair) -> None:
    class Busy(Exception):
        retryable = True

    async def busy() -> None:
        raise Busy("try later")

    pair.worker.register("busy", busy)
    with pytest.raises(RemoteError) as info:
        await pair.sup.call("busy")
    assert info.value.retryable is True


async def test_unknown_method_and_bad_arguments(pair: Pair) -> None:
    pair.worker.register("one", lambda a, *, b: a + b)
    with pytest.raises(RemoteError) as unknown:
        await pair.sup.call("no_such_method")
    assert unknown.value.code == "unknown_method"
    with pytest.raises(RemoteError) as bad:
        await pair.sup.call("one", 1, 2, 3)
    assert bad.value.code == "bad_request"
    with pytest.raises(RemoteError) as bad_kw:
        await pair.sup.call("one", 1, c=2)
    assert bad_kw.value.code == "bad_request"
    assert await pair.sup.call("one", 1, b=2) == 3  # the peer still works


async def test_unencodable_argument_fails_at_caller_and_result_fails_remote(pair: Pair) -> None:
    pair.worker.register("echo", lambda x: x)
    pair.worker.register("give_opaque", lambda: object())
    with pytest.raises(TypeError, match=r"builtins\.object"):
        await pair.sup.call("echo", {"x": object()})
    with pytest.raises(RemoteError) as info:
        await pair.sup.call("give_opaque")
    assert info.value.code == "encode_error"


async def test_notify_runs_handler_without_answer(pair: Pair) -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def note(x: int) -> None:
        await seen.put(x)

    pair.worker.register("note", note)
    pair.worker.register("fail", lambda: 1 / 0)
    await pair.sup.notify("fail")  # errors are only logged on the other side
    await pair.sup.notify("note", 41)
    assert await asyncio.wait_for(seen.get(), 5) == 41


async def test_ping_answered_by_loop(pair: Pair) -> None:
    rtt = await pair.sup.ping(timeout=5)
    assert rtt >= 0
    rtt2 = await pair.worker.ping(timeout=5)
    assert rtt2 >= 0


async def test_timeout_cancels_remote_handler(pair: Pair) -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    pair.worker.register("slow", slow)
    with pytest.raises(CallTimeout) as info:
        await pair.sup.call("slow", timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_caller_cancellation_cancels_remote_handler(pair: Pair) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    pair.worker.register("slow", slow)
    task = asyncio.create_task(pair.sup.call("slow"))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_call_blocking_from_foreign_thread_running_anyio(pair: Pair) -> None:
    """A plugin thread runs its own anyio.run loop and uses both sync and async paths."""

    def resolve(text: str) -> str:
        return text.upper()

    pair.sup.register("resolve_message", resolve)
    pair.sup.register("slow_add", _slow_add)
    results: dict[str, Any] = {}

    async def plugin_main() -> None:
        # sync API method called inside the plugin's loop → blocking path
        results["blocking"] = pair.worker.call_blocking("resolve_message", "hi")
        # awaitable from the foreign loop (non-blocking for that loop)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await anyio.sleep(0.01)
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            results["async"] = await pair.worker.call_from_thread_loop("slow_add", 2, 3)
            results["plain_call"] = await pair.worker.call("resolve_message", "x")
            results["ping"] = await pair.worker.ping(timeout=5)
            tg.cancel_scope.cancel()
        results["ticks"] = ticks

    def thread_main() -> None:
        try:
            anyio.run(plugin_main)
        except BaseException as exc:  # surface failures to the test
            results["error"] = exc

    t = threading.Thread(target=thread_main)
    t.start()
    while t.is_alive():
        await asyncio.sleep(0.01)
    assert "error" not in results, results.get("error")
    assert results["blocking"] == "HI"
    assert results["async"] == 5
    assert results["plain_call"] == "X"
    assert results["ticks"] > 0  # the plugin loop kept running while waiting


async def _slow_add(a: int, b: int) -> int:
    await asyncio.sleep(0.1)
    return a + b


async def test_call_blocking_on_peer_loop_is_refused(pair: Pair) -> None:
    with pytest.raises(RuntimeError, match="deadlock"):
        pair.sup.call_blocking("anything")


async def test_close_fails_pending_calls_with_peer_gone(pair: Pair) -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(30)

    pair.worker.register("hang", hang)
    task = asyncio.create_task(pair.sup.call("hang"))
    await asyncio.wait_for(started.wait(), 5)
    lost: list[bytes] = []
    pair.endpoint.on_peer_lost = lost.append
    await pair.worker.aclose("worker shutting down")
    with pytest.raises(PeerGone, match="worker shutting down"):
        await asyncio.wait_for(task, 5)
    assert pair.sup.closed
    assert lost == [pair.sup.identity]
    with pytest.raises(PeerGone):
        await pair.sup.call("hang")


async def test_type_error_inside_handler_is_not_bad_request(pair: Pair) -> None:
    def inner(x: int) -> int:
        return x + "oops"  # type: ignore[operator]

    pair.worker.register("inner", inner)
    with pytest.raises(RemoteError) as info:
        await pair.sup.call("inner", 1)
    assert info.value.code == "handler_error"
    assert info.value.remote_type == "builtins.TypeError"


async def test_stream_with_bad_arguments_is_bad_request(pair: Pair) -> None:
    async def numbers(n: int) -> Any:
        for i in range(n):
            yield i

    pair.worker.register_stream("numbers", numbers)
    with pytest.raises(RemoteError) as info:
        async with pair.sup.stream("numbers", 1, 2) as items:
            async for _ in items:
                pass
    assert info.value.code == "bad_request"


async def test_too_large_messages_fail_alone_and_keep_the_connection(pair: Pair) -> None:
    pair.worker.max_frame_bytes = 64 * 1024
    pair.sup.max_frame_bytes = 64 * 1024
    pair.worker.register("echo", lambda x: x)
    pair.worker.register("big", lambda: "b" * 100_000)
    with pytest.raises(ProtocolError) as sent:
        await pair.sup.call("echo", "a" * 100_000)
    assert sent.value.code == "too_large"
    with pytest.raises(RemoteError) as answered:
        await pair.sup.call("big")
    assert answered.value.code == "too_large"
    assert await pair.sup.call("echo", "small") == "small"
