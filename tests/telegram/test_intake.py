"""The telegram loop's intake accounting (takopi.telegram.intake): a taken message is
reported handled exactly once, when its handler and every task started on its behalf ended."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from takopi.telegram.background import Background
from takopi.telegram.intake import CURRENT, HoldingTaskGroup, IntakeReporter
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
