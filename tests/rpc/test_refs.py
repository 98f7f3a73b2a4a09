"""References: callbacks and live objects both ways, home loops, release on GC and on loss."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from takopi.model import ResumeToken
from takopi.rpc import RemoteError, RemoteProxy, mark_by_reference
from takopi.transport import MessageRef, RenderedMessage
from tests.support.waiting import wait_until_async

from .conftest import Pair

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Wait until ``predicate`` holds, collecting garbage between polls (proxies die then)."""

    def collected() -> Any:
        gc.collect()
        return predicate()

    await wait_until_async(collected, timeout, interval=0.01)


@mark_by_reference
class Executor:
    """Stands in for a transport's CommandExecutor."""

    __rpc_attrs__ = ("default_engine",)

    def __init__(self) -> None:
        self.sent: list[RenderedMessage] = []
        self.default_engine = "codex"
        self.loop_thread: int | None = None

    async def send(self, message: RenderedMessage, *, notify: bool = True) -> MessageRef:
        self.loop_thread = threading.get_ident()
        self.sent.append(message)
        return MessageRef(channel_id=1, message_id=len(self.sent))

    def describe(self) -> str:
        return f"executor with {len(self.sent)} messages"

    async def events(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    def _private(self) -> None:
        raise AssertionError("must not be callable remotely")


async def test_callback_travels_and_is_released(pair: Pair) -> None:
    seen: list[ResumeToken] = []

    def on_thread_known(token: ResumeToken, done: Any) -> None:
        seen.append(token)

    async def run(prompt: str, on_known: Any) -> str:
        assert isinstance(on_known, RemoteProxy)
        await on_known(ResumeToken("codex", "abc"), None)
        return "ok"

    pair.worker.register("run", run)
    assert await pair.sup.call("run", "hi", on_thread_known) == "ok"
    assert seen == [ResumeToken("codex", "abc")]
    # the worker's proxy is garbage now: the supervisor's export table drains
    await wait_for(lambda: pair.sup.exported_count == 0)


async def test_live_object_both_ways_and_back_reference(pair: Pair) -> None:
    executor = Executor()
    holder: dict[str, Any] = {}

    async def handle(ctx: dict[str, Any]) -> str:
        ex = ctx["executor"]
        holder["proxy"] = ex  # keep it after the call returns (background work)
        ref = await ex.send(RenderedMessage(text="hello"), notify=False)
        assert isinstance(ref, MessageRef)
        assert ex.default_engine == "codex"  # attribute snapshot
        assert getattr(ex, "no_such_attr", None) is None
        with pytest.raises(AttributeError):
            ex._private  # noqa: B018 - private names are never exposed
        assert ex.describe.blocking is not None
        # the proxy sent back home decodes to the original object
        return await pair.worker.call("identity_check", ex)

    pair.worker.register("handle", handle)
    pair.sup.register("identity_check", lambda obj: obj is executor)
    assert await pair.sup.call("handle", {"executor": executor}) is True
    assert [m.text for m in executor.sent] == ["hello"]
    # still valid after handle() returned: a background task can keep using it
    proxy = holder["proxy"]
    await proxy.send(RenderedMessage(text="later"))
    assert [m.text for m in executor.sent] == ["hello", "later"]
    assert pair.sup.exported_count == 1
    # streams over a method of the referenced object
    async with proxy.rpc_stream("events", 5) as items:
        assert [i async for i in items] == [0, 1, 2, 3, 4]
    # remote refuses private methods even if asked directly
    with pytest.raises(RemoteError) as info:
        await proxy.rpc_call("_private")
    assert info.value.code == "unknown_method"
    del holder["proxy"], proxy, info  # (the traceback in `info` references the proxy)
    await wait_for(lambda: pair.sup.exported_count == 0)


async def test_exported_object_runs_on_its_home_loop(pair: Pair) -> None:
    """Objects exported from a plugin's own loop thread are invoked on that loop."""
    executor = Executor()
    started = threading.Event()
    stop = threading.Event()
    result: dict[str, Any] = {}

    async def handle(ex: Any) -> str:
        await ex.send(RenderedMessage(text="from supervisor"))
        return await ex.rpc_call("describe")

    pair.sup.register("handle", handle)

    async def plugin_main() -> None:
        result["thread"] = threading.get_ident()
        # sent from this (foreign) loop: its methods must run here
        result["answer"] = await pair.worker.call("handle", executor)
        started.set()
        while not stop.is_set():
            await anyio.sleep(0.01)

    t = threading.Thread(target=lambda: anyio.run(plugin_main))
    t.start()
    try:
        while not started.is_set():
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        while t.is_alive():
            await asyncio.sleep(0.01)
    assert result["answer"] == "executor with 1 messages"
    assert executor.loop_thread == result["thread"]
    assert executor.loop_thread != threading.get_ident()


async def test_call_blocking_on_proxy_from_plain_thread(pair: Pair) -> None:
    executor = Executor()
    holder: dict[str, Any] = {}

    async def keep(ex: Any) -> None:
        holder["ex"] = ex

    pair.worker.register("keep", keep)
    await pair.sup.call("keep", executor)
    out: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: out.update(r=holder["ex"].call_blocking("describe", timeout=5))
    )
    t.start()
    while t.is_alive():
        await asyncio.sleep(0.01)
    assert out["r"] == "executor with 0 messages"


async def test_exports_dropped_when_peer_goes_away(pair: Pair) -> None:
    executor = Executor()
    holder: dict[str, Any] = {}

    async def keep(ex: Any) -> None:
        holder["ex"] = ex

    pair.worker.register("keep", keep)
    await pair.sup.call("keep", executor)
    assert pair.sup.exported_count == 1
    await pair.worker.aclose()
    await wait_for(lambda: pair.sup.closed)
    assert pair.sup.exported_count == 0
    with pytest.raises(Exception) as info:
        await holder["ex"].describe()
    assert "gone" in str(info.value)


async def test_export_wrapper_forces_reference_with_attrs(pair: Pair) -> None:
    state = {"n": 0}

    class Counter:
        def bump(self) -> int:
            state["n"] += 1
            return state["n"]

    async def use(counter: Any) -> tuple[int, str]:
        return (await counter.bump(), counter.label)

    pair.worker.register("use", use)
    counter = Counter()
    out = await pair.sup.call("use", pair.sup.export(counter, attrs={"label": "c1"}))
    assert out == (1, "c1")
    assert state["n"] == 1


async def test_handler_registered_with_loop_runs_on_that_loop(pair: Pair) -> None:
    ready = threading.Event()
    stop = threading.Event()
    box: dict[str, Any] = {}

    async def plugin_main() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["thread"] = threading.get_ident()
        ready.set()
        while not stop.is_set():
            await anyio.sleep(0.01)

    t = threading.Thread(target=lambda: anyio.run(plugin_main))
    t.start()
    try:
        while not ready.is_set():
            await asyncio.sleep(0.01)

        async def where() -> int:
            await asyncio.sleep(0)
            return threading.get_ident()

        pair.worker.register("where", where, loop=box["loop"])
        assert await pair.sup.call("where", timeout=10) == box["thread"]
    finally:
        stop.set()
        while t.is_alive():
            await asyncio.sleep(0.01)
    # once that loop is gone the handler fails clearly instead of hanging
    with pytest.raises(RemoteError, match="no longer running"):
        await pair.sup.call("where", timeout=10)
