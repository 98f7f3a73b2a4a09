"""The outbox: keys, priorities, coalescing, per-chat pacing, retries."""

from __future__ import annotations

import anyio
import pytest

from takopi.telegram.client_api import (
    TelegramApiError,
    TelegramRetryAfter,
    TelegramTransientError,
)
from takopi.telegram.outbox import (
    DELETE_PRIORITY,
    EDIT_PRIORITY,
    SEND_PRIORITY,
    OutboxOp,
    TelegramOutbox,
    default_interval,
    is_group_chat_id,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def _op(log: list[str], name: str, result: object = None):
    async def execute() -> object:
        log.append(name)
        return result if result is not None else name

    return execute


async def test_priority_send_delete_edit_within_a_chat():
    log: list[str] = []
    gate = anyio.Event()

    async def blocker() -> str:
        await gate.wait()
        log.append("blocker")
        return "blocker"

    async with (
        TelegramOutbox(interval_for=lambda _c: 0.0) as outbox,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(
            lambda: outbox.enqueue("b", chat_id=1, priority=SEND_PRIORITY, execute=blocker)
        )
        await anyio.wait_all_tasks_blocked()
        for key, prio in (
            ("edit", EDIT_PRIORITY),
            ("delete", DELETE_PRIORITY),
            ("send", SEND_PRIORITY),
        ):
            tg.start_soon(
                lambda k=key, p=prio: outbox.enqueue(k, chat_id=1, priority=p, execute=_op(log, k))
            )
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert log == ["blocker", "send", "delete", "edit"]


async def test_newer_op_replaces_payload_and_keeps_its_place():
    log: list[str] = []
    results: dict[str, object] = {}
    gate = anyio.Event()

    async def blocker() -> str:
        await gate.wait()
        return "b"

    async def run(name: str, key: str, prio: int) -> None:
        results[name] = await outbox.enqueue(key, chat_id=1, priority=prio, execute=_op(log, name))

    async with (
        TelegramOutbox(interval_for=lambda _c: 0.0) as outbox,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: outbox.enqueue("x", chat_id=1, priority=0, execute=blocker))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, "edit1", "edit-key", EDIT_PRIORITY)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, "other-edit", "other", EDIT_PRIORITY)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, "edit2", "edit-key", EDIT_PRIORITY)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    # edit2 replaced edit1 but kept edit1's (earlier) place before other-edit
    assert log == ["edit2", "other-edit"]
    assert results == {"edit1": None, "edit2": "edit2", "other-edit": "other-edit"}


async def test_a_busy_group_does_not_slow_a_private_chat():
    log: list[str] = []
    intervals = {-100: 3600.0, 5: 0.0}
    async with (
        TelegramOutbox(interval_for=lambda c: intervals[c]) as outbox,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(
            lambda: outbox.enqueue("g1", chat_id=-100, priority=0, execute=_op(log, "g1"))
        )
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(
            lambda: outbox.enqueue("g2", chat_id=-100, priority=0, execute=_op(log, "g2"))
        )
        assert await outbox.enqueue("p1", chat_id=5, priority=0, execute=_op(log, "p1")) == "p1"
        assert await outbox.enqueue("p2", chat_id=5, priority=0, execute=_op(log, "p2")) == "p2"
        assert log == ["g1", "p1", "p2"]  # g2 waits for the group's pacing, privates don't
        assert outbox.pending_count() == 1
        tg.cancel_scope.cancel()


async def test_retry_after_is_honoured_and_the_op_retried():
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TelegramRetryAfter("sendMessage", 0.05)
        return "sent"

    async with TelegramOutbox(interval_for=lambda _c: 0.0) as outbox:
        assert await outbox.enqueue("k", chat_id=1, priority=0, execute=flaky) == "sent"
    assert calls == 2


async def test_transient_errors_are_retried_then_given_up():
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise TelegramTransientError("sendMessage", "502")

    async with TelegramOutbox(
        interval_for=lambda _c: 0.0, max_attempts=3, backoff_base_s=0.01
    ) as outbox:
        assert await outbox.enqueue("k", chat_id=1, priority=0, execute=broken) is None
    assert calls == 3


async def test_api_errors_are_not_retried():
    calls = 0

    async def bad() -> str:
        nonlocal calls
        calls += 1
        raise TelegramApiError("sendMessage", "Bad Request: chat not found", 400)

    async with TelegramOutbox(interval_for=lambda _c: 0.0) as outbox:
        assert await outbox.enqueue("k", chat_id=1, priority=0, execute=bad) is None
    assert calls == 1


async def test_an_op_superseded_while_waiting_for_retry_is_dropped():
    log: list[str] = []

    async def limited() -> str:
        log.append("old")
        raise TelegramRetryAfter("editMessageText", 0.2)

    async with (
        TelegramOutbox(interval_for=lambda _c: 0.0) as outbox,
        anyio.create_task_group() as tg,
    ):
        results: dict[str, object] = {}

        async def old() -> None:
            results["old"] = await outbox.enqueue("e", chat_id=1, priority=2, execute=limited)

        tg.start_soon(old)
        while not log:
            await anyio.sleep(0.01)
        results["new"] = await outbox.enqueue("e", chat_id=1, priority=2, execute=_op(log, "new"))
    assert log == ["old", "new"]
    assert results == {"old": None, "new": "new"}


async def test_global_rate_caps_ops_per_second():
    now = [100.0]
    outbox = TelegramOutbox(interval_for=lambda _c: 0.0, global_rate=2, clock=lambda: now[0])

    async def noop() -> None:
        return None

    for chat in (1, 2, 3):
        outbox._pending[("k", chat)] = OutboxOp(
            key=("k", chat), chat_id=chat, priority=0, execute=noop
        )
    outbox._starts.extend([100.0, 100.0])
    op, wake = outbox._pick(100.0)
    assert op is None and wake == 101.0  # window full until the oldest start is 1 s old
    op, _ = outbox._pick(101.0)
    assert op is not None


async def test_close_fails_pending_ops():
    async with TelegramOutbox(interval_for=lambda _c: 3600.0) as outbox:
        await outbox.enqueue("a", chat_id=1, priority=0, execute=_op([], "a"))
        result: list[object] = []

        async def late() -> None:
            result.append(await outbox.enqueue("b", chat_id=1, priority=0, execute=_op([], "b")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(late)
            await anyio.wait_all_tasks_blocked()
            await outbox.close()
    assert result == [None]


def test_pacing_defaults():
    assert default_interval(5) == 1.0
    assert default_interval(-100123) == 3.0
    assert default_interval(None) == 1.0
    assert is_group_chat_id("-5") and not is_group_chat_id("x")
