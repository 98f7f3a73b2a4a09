"""Forwarded-message coalescing (``forward_coalesce_s``).

Every prompt is held for ``delay_s`` under the key ``(chat_id, thread_id or 0, sender_id or
0)``. Forwarded text messages arriving from the same key meanwhile are attached (and re-arm
the timer); a newer prompt replaces the pending one but inherits its forwards. Forwards with
no pending prompt are ignored. When the timer fires, ``on_flush(prompt, forwards)`` runs.

Intake (:mod:`.intake`): the pending prompt and its forwards stay open with the supervisor
while they wait (the timer itself holds nothing). A replaced prompt is handled then — as in
the reference it gets no reply of its own —; the flush runs under the latest prompt's hold,
the forwards riding along with it until its run is launched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .intake import HeldMessages, detached
from .types import TelegramIncomingMessage

CoalesceKey = tuple[int, int, int]
OnFlush = Callable[
    [TelegramIncomingMessage, list[TelegramIncomingMessage]], Coroutine[Any, Any, None]
]


def coalesce_key(msg: TelegramIncomingMessage) -> CoalesceKey:
    return (msg.chat_id, msg.thread_id or 0, msg.sender_id or 0)


def format_forwarded_prompt(
    prompt: TelegramIncomingMessage, forwards: list[TelegramIncomingMessage]
) -> str:
    """The prompt text followed by the forwarded texts (by message id, blank-line joined)."""
    texts = [f.text for f in sorted(forwards, key=lambda m: m.message_id) if f.text.strip()]
    if not texts:
        return prompt.text
    return "\n\n".join([prompt.text, *texts])


@dataclass
class _Pending:
    prompt: TelegramIncomingMessage
    forwards: list[TelegramIncomingMessage] = field(default_factory=list)
    deadline: float = 0.0
    cancelled: bool = False
    held: HeldMessages = field(default_factory=HeldMessages)


class ForwardCoalescer:
    """See module docstring."""

    def __init__(
        self,
        *,
        delay_s: float,
        task_group: TaskGroup,
        on_flush: OnFlush,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._delay_s = max(0.0, float(delay_s))
        self._tg = task_group
        self._on_flush = on_flush
        self._clock = clock
        self._pending: dict[CoalesceKey, _Pending] = {}

    def submit(self, msg: TelegramIncomingMessage) -> None:
        """Hold ``msg`` as the pending prompt of its key (or run it at once if disabled)."""
        if self._delay_s <= 0 or msg.sender_id is None:
            self._tg.start_soon(self._on_flush, msg, [])
            return
        key = coalesce_key(msg)
        pending = self._pending.get(key)
        if pending is not None:
            pending.held.drop(pending.prompt)  # replaced: no reply of its own
            pending.prompt = msg
            pending.held.add(msg)
            pending.deadline = self._clock() + self._delay_s
            return
        pending = _Pending(prompt=msg, deadline=self._clock() + self._delay_s)
        pending.held.add(msg)
        self._pending[key] = pending
        with detached():
            self._tg.start_soon(self._timer, key, pending)

    def attach_forward(self, msg: TelegramIncomingMessage) -> bool:
        """Attach a forwarded message to the pending prompt of its key; False if none."""
        pending = self._pending.get(coalesce_key(msg))
        if pending is None:
            return False
        pending.forwards.append(msg)
        pending.held.add(msg)
        pending.deadline = self._clock() + self._delay_s
        return True

    def cancel(self, chat_id: int, thread_id: int | None, sender_id: int | None) -> bool:
        """Drop the pending prompt of a key (``/new``); True if there was one."""
        pending = self._pending.pop((chat_id, thread_id or 0, sender_id or 0), None)
        if pending is None:
            return False
        pending.cancelled = True
        pending.held.drop_all()
        return True

    async def _timer(self, key: CoalesceKey, pending: _Pending) -> None:
        try:
            while True:
                remaining = pending.deadline - self._clock()
                if remaining <= 0:
                    break
                await anyio.sleep(remaining)
        except BaseException as exc:  # the loop is stopping: the messages were not run
            if self._pending.get(key) is pending:
                del self._pending[key]
            pending.held.drop_all(exc)
            raise
        if pending.cancelled or self._pending.get(key) is not pending:
            return
        del self._pending[key]
        with pending.held.handled_as(pending.prompt):
            await self._on_flush(pending.prompt, list(pending.forwards))


__all__ = ["ForwardCoalescer", "coalesce_key", "format_forwarded_prompt"]
