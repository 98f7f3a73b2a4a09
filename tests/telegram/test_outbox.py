"""The outbox: keys, priorities, coalescing, per-chat token buckets, retries."""

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
    TelegramOutbox,
)
from takopi.telegram.pacing import (
    BUCKET,
    REFERENCE,
    SlidingWindow,
    TokenBucket,
    default_interval,
    is_group_chat_id,
    pacing_from_env,
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
        TelegramOutbox(interval_for=lambda c: intervals[c], pacing=REFERENCE) as outbox,
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


async def test_close_fails_pending_ops():
    async with TelegramOutbox(interval_for=lambda _c: 3600.0, pacing=REFERENCE) as outbox:
        await outbox.enqueue("a", chat_id=1, priority=0, execute=_op([], "a"))
        result: list[object] = []

        async def late() -> None:
            result.append(await outbox.enqueue("b", chat_id=1, priority=0, execute=_op([], "b")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(late)
            await anyio.wait_all_tasks_blocked()
            await outbox.close()
    assert result == [None]


# -- token buckets, driven by a manual clock ----------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _settle(outbox: TelegramOutbox, clock: ManualClock, to: float | None = None) -> None:
    """Move the clock to ``to`` (seconds after the start) and let the dispatcher run."""
    if to is not None:
        clock.now = 100.0 + to
    outbox._poke()
    await anyio.wait_all_tasks_blocked()


async def test_an_idle_chat_bursts_then_sends_at_the_long_run_rate():
    clock = ManualClock()
    log: list[str] = []
    async with TelegramOutbox(interval_for=lambda _c: 1.0, clock=clock) as outbox:
        for i in range(5):
            await outbox.enqueue(
                f"s{i}", chat_id=7, priority=SEND_PRIORITY, execute=_op(log, f"s{i}"), wait=False
            )
        await _settle(outbox, clock)
        assert log == ["s0", "s1", "s2"]  # the burst: no pacing wait at all
        assert outbox.stats.paced == 0
        await _settle(outbox, clock, 0.99)
        assert log == ["s0", "s1", "s2"]
        await _settle(outbox, clock, 1.0)
        assert log == ["s0", "s1", "s2", "s3"]
        await _settle(outbox, clock, 1.5)
        assert len(log) == 4
        await _settle(outbox, clock, 2.0)
        assert log == ["s0", "s1", "s2", "s3", "s4"]
        assert outbox.stats.paced == 2 and outbox.stats.started == 5


async def test_edits_only_use_spare_capacity_and_deletes_are_free():
    clock = ManualClock()
    log: list[str] = []
    async with TelegramOutbox(interval_for=lambda _c: 1.0, clock=clock) as outbox:

        async def put(key: str, prio: int) -> None:
            await outbox.enqueue(key, chat_id=7, priority=prio, execute=_op(log, key), wait=False)

        await put("progress", SEND_PRIORITY)
        await put("edit", EDIT_PRIORITY)
        await _settle(outbox, clock)
        await _settle(outbox, clock, 0.5)
        # the edit would leave fewer than 2 tokens for sends: it waits for a full bucket
        assert log == ["progress"]
        await put("final", SEND_PRIORITY)
        await _settle(outbox, clock)
        await put("delete", DELETE_PRIORITY)
        await _settle(outbox, clock)
        await put("next-progress", SEND_PRIORITY)
        await _settle(outbox, clock)
        assert log == ["progress", "final", "delete", "next-progress"]
        assert outbox.stats.paced == 0
        assert outbox.tokens(7) == pytest.approx(0.5)  # 3 - 3 sends + 0.5 s of refill
        await _settle(outbox, clock, 2.9)
        assert log[-1] == "next-progress"  # 2.9 tokens: still not spare
        await _settle(outbox, clock, 3.0)
        assert log[-1] == "edit"


async def test_an_edit_that_is_waited_for_does_not_wait_for_spare_capacity():
    """With final_notify off the final answer is an edit of the progress message: it must go
    out like a send, not like a progress edit."""
    clock = ManualClock()
    log: list[str] = []
    async with (
        TelegramOutbox(interval_for=lambda _c: 1.0, clock=clock) as outbox,
        anyio.create_task_group() as tg,
    ):
        await outbox.enqueue("progress", chat_id=7, priority=SEND_PRIORITY, execute=_op(log, "p"))
        await outbox.enqueue(
            ("edit", 1), chat_id=7, priority=EDIT_PRIORITY, execute=_op(log, "e1"), wait=False
        )
        await _settle(outbox, clock)
        assert log == ["p"]  # the progress edit waits for a full bucket
        result: list[object] = []

        async def final_edit() -> None:
            result.append(
                await outbox.enqueue(
                    ("edit", 1), chat_id=7, priority=EDIT_PRIORITY, execute=_op(log, "final")
                )
            )

        tg.start_soon(final_edit)
        await _settle(outbox, clock)
        assert log == ["p", "final"] and result == ["final"]
        assert outbox.stats.paced == 0


async def test_reference_pacing_charges_every_op_one_interval():
    clock = ManualClock()
    log: list[str] = []
    async with TelegramOutbox(interval_for=lambda _c: 1.0, pacing=REFERENCE, clock=clock) as ob:
        for key, prio in (("send", SEND_PRIORITY), ("delete", DELETE_PRIORITY)):
            await ob.enqueue(key, chat_id=7, priority=prio, execute=_op(log, key), wait=False)
        await _settle(ob, clock)
        assert log == ["send"]
        await _settle(ob, clock, 1.0)
        assert log == ["send", "delete"]


async def test_time_in_flight_does_not_refill_the_bucket():
    clock = ManualClock()
    log: list[str] = []
    gate = anyio.Event()

    async def slow() -> str:
        await gate.wait()
        log.append("slow")
        return "slow"

    async with TelegramOutbox(interval_for=lambda _c: 1.0, clock=clock) as outbox:
        for i in range(2):
            await outbox.enqueue(f"s{i}", chat_id=7, priority=0, execute=_op(log, f"s{i}"))
        await outbox.enqueue("slow", chat_id=7, priority=0, execute=slow, wait=False)
        await outbox.enqueue("after", chat_id=7, priority=0, execute=_op(log, "after"), wait=False)
        await _settle(outbox, clock)
        await _settle(outbox, clock, 5.0)  # 5 s pass while the third send is in flight
        gate.set()
        await _settle(outbox, clock)
        # Telegram may have counted that send as late as its answer: the bucket is empty
        assert log == ["s0", "s1", "slow"]
        assert outbox.tokens(7) == 0.0
        await _settle(outbox, clock, 6.0)
        assert log[-1] == "after"


async def test_retry_after_empties_the_bucket_until_telegram_allows_again():
    clock = ManualClock()
    calls: list[float] = []

    async def limited() -> str:
        calls.append(clock.now)
        if len(calls) == 1:
            raise TelegramRetryAfter("sendMessage", 2.0)
        return "ok"

    async with TelegramOutbox(interval_for=lambda _c: 1.0, clock=clock) as outbox:
        await outbox.enqueue("k", chat_id=7, priority=0, execute=limited, wait=False)
        await _settle(outbox, clock)
        assert len(calls) == 1 and outbox.stats.retry_after == 1
        await _settle(outbox, clock, 2.5)  # retry_after is over, but the bucket is still empty
        assert len(calls) == 1
        await _settle(outbox, clock, 3.0)
        assert calls == [100.0, 103.0]


async def test_global_window_caps_writes_across_chats():
    clock = ManualClock()
    log: list[str] = []
    async with TelegramOutbox(interval_for=lambda _c: 0.0, global_rate=2, clock=clock) as ob:
        for chat in (1, 2, 3):
            await ob.enqueue(
                f"c{chat}", chat_id=chat, priority=0, execute=_op(log, f"c{chat}"), wait=False
            )
        await _settle(ob, clock)
        assert sorted(log) == ["c1", "c2"]
        await _settle(ob, clock, 0.99)
        assert len(log) == 2 and ob.stats.globally_delayed >= 1
        await _settle(ob, clock, 1.0)
        assert sorted(log) == ["c1", "c2", "c3"]


def test_token_bucket_and_window_arithmetic():
    bucket = TokenBucket(3.0, 0.5, now=0.0)
    bucket.spend(0.0, 3.0)
    assert bucket.ready_at(0.0, 1.0) == 2.0
    assert bucket.level(1.0) == 0.5
    bucket.drain(until=10.0)  # a 429 at t=1 with retry_after=9
    assert bucket.level(10.0) == 0.0 and bucket.ready_at(5.0, 1.0) == 12.0
    assert bucket.ready_at(20.0, 5.0) == 20.0  # never asks for more than the capacity
    unpaced = TokenBucket(3.0, float("inf"), now=0.0)
    unpaced.spend(0.0, 3.0)
    assert unpaced.ready_at(0.0, 3.0) == 0.0

    window = SlidingWindow(2, 1.0)
    window.start()
    window.start()
    assert window.ready_at(0.0) == float("inf")  # both in flight: wait for an answer
    window.finish(0.5)
    window.finish(0.6)
    assert window.ready_at(0.7) == 1.5
    assert window.ready_at(1.5) == 1.5


def test_default_limits_stay_within_telegrams_published_limits():
    # private chats: one message per second in the long run, a burst of 3
    assert default_interval(5) == default_interval(None) == 1.0
    # groups: a full burst plus a minute of refill is at most 20 messages per minute
    assert BUCKET.burst + 60.0 / default_interval(-100123) <= 20.0 + 1e-9
    assert BUCKET.cost("send") == (1.0, 1.0)
    assert BUCKET.cost("edit", background=True) == (1.0, 3.0)  # a progress edit
    assert BUCKET.cost("edit") == (1.0, 1.0)  # an edit someone waits for (a final answer)
    assert BUCKET.cost("delete") == (0.0, 0.0)
    assert REFERENCE.cost("delete") == (1.0, 1.0)
    assert is_group_chat_id("-5") and not is_group_chat_id("x")


def test_pacing_from_the_environment():
    assert pacing_from_env({}) == (BUCKET, None)
    assert pacing_from_env({"TAKOPI_TELEGRAM_PACING": " Reference "}) == (REFERENCE, None)
    assert pacing_from_env({"TAKOPI_TELEGRAM_PACING": "fast"}) == (BUCKET, "fast")


async def test_idle_chats_are_forgotten_once_there_are_many():
    log: list[str] = []
    clock = ManualClock()
    async with TelegramOutbox(interval_for=lambda _c: 1.0, global_rate=1000, clock=clock) as outbox:
        for chat in range(300):
            await outbox.enqueue(f"c{chat}", chat_id=chat, priority=0, execute=_op(log, "x"))
        # every chat has spent a token: none is idle with a full bucket yet
        assert len(outbox._chats) == 300
        clock.now += 10.0  # all buckets refill
        await outbox.enqueue("last", chat_id=-1, priority=0, execute=_op(log, "x"))
        assert set(outbox._chats) == {-1}
    assert len(log) == 301
