"""The telegram loop's intake accounting (takopi.telegram.intake): a taken message is
reported handled exactly once, when its handler and every task started on its behalf ended."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from takopi.telegram.background import Background
from takopi.telegram.coalesce import ForwardCoalescer
from takopi.telegram.intake import CURRENT, HoldingTaskGroup, IntakeReporter, run_launched
from takopi.telegram.types import TelegramIncomingMessage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingRuntime:
    """The two runtime methods a supervisor-backed runtime offers, recording their calls."""

    def __init__(self) -> None:
        self.taken: list[tuple[Any, Any, Any]] = []
        self.handled: list[tuple[Any, Any]] = []

    async def note_incoming(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None, seq: Any = None
    ) -> bool:
        self.taken.append((channel_id, message_id, seq))
        return True

    async def incoming_handled(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None
    ) -> None:
        self.handled.append((channel_id, message_id))


def _message(message_id: int) -> TelegramIncomingMessage:
    return TelegramIncomingMessage(
        chat_id=7, message_id=message_id, text="hi", sender_id=1, update_id=100 + message_id
    )


async def _handle(reporter: IntakeReporter, msg: TelegramIncomingMessage, body: Any) -> None:
    # What TelegramLoop._handle does around routing.
    hold = await reporter.taken(msg)
    token = CURRENT.set(hold)
    try:
        await body()
    finally:
        CURRENT.reset(token)
        if hold is not None:
            hold.release()


async def test_handled_once_after_the_last_task_started_for_it() -> None:
    runtime = RecordingRuntime()
    later = anyio.Event()
    async with anyio.create_task_group() as inner:
        group = HoldingTaskGroup(inner)
        reporter = IntakeReporter(runtime, Background(group).spawn)

        async def background_step() -> None:
            await later.wait()

        async def route() -> None:
            group.start_soon(background_step)  # outlives the handler: it holds the message

        await _handle(reporter, _message(1), route)
        await anyio.sleep(0.05)
        assert runtime.taken == [(7, 1, 101)]
        assert runtime.handled == []  # the background step still runs for it
        later.set()
        with anyio.fail_after(5):
            while not runtime.handled:
                await anyio.sleep(0.01)
        # The report, started from the last holder's context, does not hold the message
        # again: it is reported once, not in a loop.
        await anyio.sleep(0.2)
        assert runtime.handled == [(7, 1)]
        inner.cancel_scope.cancel()


async def test_handled_at_once_without_tasks_and_ignored_without_a_supervisor() -> None:
    runtime = RecordingRuntime()
    async with anyio.create_task_group() as inner:
        group = HoldingTaskGroup(inner)
        reporter = IntakeReporter(runtime, Background(group).spawn)

        async def nothing() -> None:
            return None

        await _handle(reporter, _message(2), nothing)
        with anyio.fail_after(5):
            while not runtime.handled:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        assert runtime.handled == [(7, 2)]
        # An in-process runtime has no intake methods: nothing is held or reported.
        plain = IntakeReporter(object(), Background(group).spawn)
        assert await plain.taken(_message(3)) is None


async def _wait_for(predicate: Any) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.01)


async def test_coalesced_messages_end_once_each_when_the_combined_run_is_launched() -> None:
    """A replaced prompt is handled when replaced (no reply of its own); a forward rides
    along with the latest prompt until its run is launched; the timer holds nothing."""
    runtime = RecordingRuntime()
    launched = anyio.Event()
    finish = anyio.Event()
    flushed: list[tuple[int, list[int]]] = []

    async def on_flush(
        prompt: TelegramIncomingMessage, forwards: list[TelegramIncomingMessage]
    ) -> None:
        flushed.append((prompt.message_id, [f.message_id for f in forwards]))
        run_launched()  # what RunLauncher.start does
        launched.set()
        await finish.wait()  # the run goes on under the prompt's hold

    async with anyio.create_task_group() as inner:
        group = HoldingTaskGroup(inner)
        reporter = IntakeReporter(runtime, Background(group).spawn)
        coalescer = ForwardCoalescer(delay_s=0.3, task_group=group, on_flush=on_flush)  # type: ignore[arg-type]

        async def submit(msg: TelegramIncomingMessage) -> None:
            await _handle(reporter, msg, lambda: _call(coalescer.submit, msg))

        async def forward(msg: TelegramIncomingMessage) -> None:
            await _handle(reporter, msg, lambda: _call(coalescer.attach_forward, msg))

        await submit(_message(1))
        await forward(_message(2))
        await submit(_message(3))  # replaces 1, inherits the forward 2
        await _wait_for(lambda: (7, 1) in runtime.handled)
        assert runtime.handled == [(7, 1)]  # 2 and 3 wait for the run
        await launched.wait()
        assert flushed == [(3, [2])]
        await _wait_for(lambda: (7, 2) in runtime.handled)
        await anyio.sleep(0.1)
        assert (7, 3) not in runtime.handled  # the run still holds its own message
        finish.set()
        await _wait_for(lambda: (7, 3) in runtime.handled)
        await anyio.sleep(0.1)
        assert sorted(runtime.handled) == [(7, 1), (7, 2), (7, 3)]
        inner.cancel_scope.cancel()


async def test_messages_cut_short_by_a_stop_are_never_reported_handled() -> None:
    """Cancelled while coalescing (the worker is stopping): the supervisor must still owe
    them a reply, so they are abandoned, not reported handled."""
    runtime = RecordingRuntime()

    async def on_flush(
        prompt: TelegramIncomingMessage, forwards: list[TelegramIncomingMessage]
    ) -> None:
        raise AssertionError("never flushed")

    async with anyio.create_task_group() as outer:
        outer.start_soon(anyio.sleep_forever)  # keeps the reporter's spawns possible
        async with anyio.create_task_group() as inner:
            group = HoldingTaskGroup(inner)
            reporter = IntakeReporter(runtime, Background(HoldingTaskGroup(outer)).spawn)
            coalescer = ForwardCoalescer(delay_s=30, task_group=group, on_flush=on_flush)  # type: ignore[arg-type]
            msg = _message(4)
            await _handle(reporter, msg, lambda: _call(coalescer.submit, msg))
            await anyio.sleep(0.1)
            assert runtime.handled == []
            inner.cancel_scope.cancel()
        await anyio.sleep(0.2)
        assert runtime.taken == [(7, 4, 104)]
        assert runtime.handled == []
        outer.cancel_scope.cancel()


async def _call(fn: Any, msg: TelegramIncomingMessage) -> None:
    fn(msg)
