"""Delivering journaled outcomes on behalf of a third-party transport
(``takopi.worker.foreign_deliveries``), without a supervisor: a stand-in runtime that holds
pending records, a recording transport, the real Markdown presenter, and a "plugin" thread
that runs its own event loop and builds an ``ExecBridgeConfig`` like a published transport
does. The end-to-end proof (kill -9 of a real takopi-linear worker) is in
``test_linear_transport.py``."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from takopi.presenter import MarkdownPresenter
from takopi.protocol.delivery import INTERRUPTED_ERROR
from takopi.runner_bridge import ExecBridgeConfig
from takopi.transport import MessageRef, RenderedMessage, SendOptions
from takopi.worker import foreign_deliveries
from takopi.worker.foreign_deliveries import ForeignDeliveries, deliver_through, is_third_party

pytestmark = [pytest.mark.timeout(30)]


def record(delivery_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "delivery_id": delivery_id,
        "transport": "plug",
        "engine": "codex",
        "status": "done",
        "answer": "the answer",
        "error": None,
        "resume_line": "`codex resume thread-1`",
        "context_line": None,
        "channel_id": "chan-1",
        "message_id": "msg-1",
        "thread_id": None,
        "progress_message_id": "prog-1",
    }
    return {**base, **fields}


class Runtime:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.acked: list[str] = []
        self.lock = threading.Lock()

    def pending_deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if r["delivery_id"] not in self.acked]

    def ack_delivery(self, delivery_id: str) -> bool:
        with self.lock:
            self.acked.append(delivery_id)
        return True


class Transport:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.sent: list[tuple[Any, RenderedMessage, SendOptions | None]] = []
        self.fail = fail or set()
        self.loops: set[asyncio.AbstractEventLoop] = set()

    async def send(
        self, *, channel_id: Any, message: RenderedMessage, options: SendOptions | None = None
    ) -> MessageRef | None:
        self.loops.add(asyncio.get_running_loop())
        if any(word in message.text for word in self.fail):
            raise RuntimeError("transport down")
        self.sent.append((channel_id, message, options))
        return MessageRef(channel_id, f"sent-{len(self.sent)}")

    async def edit(self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True) -> Any:
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        return True

    async def close(self) -> None:
        pass


def test_deliver_through_renders_sends_and_acks() -> None:
    runtime = Runtime(
        [
            record("ok"),
            record("err", status="error", answer="", error="engine crashed (signal 9)"),
            record("int", status="interrupted", answer="partial"),
            record("down", answer="will fail"),
            record("nowhere", channel_id=None),
        ]
    )
    transport = Transport(fail={"will fail"})
    sent = asyncio.run(deliver_through(runtime, transport, MarkdownPresenter()))
    assert sent == 3
    assert runtime.acked == ["ok", "err", "int", "nowhere"]  # not "down": retried next time
    texts = [m.text for _, m, _ in transport.sent]
    assert texts[0].startswith("done") and "the answer" in texts[0]
    assert "codex resume thread-1" in texts[0]
    assert texts[1].startswith("error") and "engine crashed (signal 9)" in texts[1]
    assert texts[2].startswith("interrupted") and "partial" in texts[2]
    assert INTERRUPTED_ERROR in texts[2]  # the one wording every transport shows
    channel, _, options = transport.sent[0]
    assert channel == "chan-1" and options is not None
    assert options.reply_to == MessageRef("chan-1", "msg-1")
    assert options.replace == MessageRef("chan-1", "prog-1") and options.notify


def run_plugin(main: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(main()), name="plugin")
    return thread


def test_relay_delivers_on_the_plugin_loop_and_steps_aside_for_self_delivering_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(foreign_deliveries, "DELIVERY_POLL_S", 0.05)
    runtime = Runtime([record("first")])
    transport = Transport()
    plugin_loop: list[asyncio.AbstractEventLoop] = []
    holder: dict[str, threading.Thread] = {}

    async def plugin_main() -> None:
        plugin_loop.append(asyncio.get_running_loop())
        ExecBridgeConfig(transport=transport, presenter=MarkdownPresenter())  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while len(transport.sent) < 2 and time.monotonic() < deadline:
            if len(transport.sent) == 1 and len(runtime.records) == 1:
                runtime.records.append(record("later"))  # finished after the restart
            await asyncio.sleep(0.02)

    holder["t"] = run_plugin(plugin_main)
    undo = ForeignDeliveries(runtime, lambda: holder.get("t")).install()
    try:
        holder["t"].start()
        holder["t"].join(15)
    finally:
        undo()
    # the journal has no duration: the presenter's header shows 0s
    assert [m.text.split("\n")[0] for _, m, _ in transport.sent] == ["done · codex · 0s"] * 2
    assert runtime.acked == ["first", "later"]
    assert transport.loops == set(plugin_loop)  # the plugin's own loop, nobody else's

    # a plugin that takes pending deliveries itself: the relay never sends
    runtime2 = Runtime([record("mine")])
    transport2 = Transport()
    taken: list[Any] = []

    async def self_delivering() -> None:
        ExecBridgeConfig(transport=transport2, presenter=MarkdownPresenter())  # type: ignore[arg-type]
        taken.extend(runtime2.pending_deliveries())  # the plugin's own delivery code
        await asyncio.sleep(0.5)

    holder["t"] = run_plugin(self_delivering)
    undo = ForeignDeliveries(runtime2, lambda: holder.get("t")).install()
    try:
        holder["t"].start()
        holder["t"].join(15)
    finally:
        undo()
    assert [r["delivery_id"] for r in taken] == ["mine"]
    assert transport2.sent == []


def test_builtin_transports_are_not_third_party() -> None:
    assert not is_third_party("telegram")
    assert not is_third_party("console")
    assert not is_third_party("no-such-transport")


def test_without_loop_policies_the_config_built_in_the_loop_is_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where event-loop policies are gone (Python 3.16), the relay still finds the plugin's
    loop when the plugin builds its ExecBridgeConfig inside it."""
    monkeypatch.setattr(foreign_deliveries, "_loop_watching_policy", lambda *_a: None)
    runtime = Runtime([record("only")])
    transport = Transport()
    holder: dict[str, threading.Thread] = {}

    async def plugin_main() -> None:
        ExecBridgeConfig(transport=transport, presenter=MarkdownPresenter())  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while not transport.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    holder["t"] = run_plugin(plugin_main)
    undo = ForeignDeliveries(runtime, lambda: holder.get("t")).install()
    try:
        holder["t"].start()
        holder["t"].join(15)
    finally:
        undo()
    assert runtime.acked == ["only"] and len(transport.sent) == 1
