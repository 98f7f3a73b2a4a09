"""The Telegram outbox: every write to the Bot API goes through here.

Rules (behavior.md §1.6, plus per-chat pacing):

- one pending op per key; a newer op with the same key replaces the payload (the older
  waiter gets ``None``) but keeps the original place in the queue (``queued_at``);
- among ready ops the lowest ``(priority, queued_at)`` goes first: send=0 < delete=1 < edit=2;
- pacing is **per chat** (``interval_for(chat_id)``: 1 s private, 3 s group, measured from
  the start of the chat's previous op) and at most one op per chat is in flight, while a
  global sliding window caps the whole bot at ``global_rate`` ops per second — so a busy
  group does not slow a private chat down;
- 429 ⇒ that chat waits ``retry_after`` and the op is re-queued under its key (unless a newer
  op superseded it); transient errors (5xx, network) are retried with backoff up to
  ``max_attempts``; other errors are logged and give ``None``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.logging import get_logger

from .client_api import TelegramApiError, TelegramRetryAfter, TelegramTransientError

SEND_PRIORITY = 0
DELETE_PRIORITY = 1
EDIT_PRIORITY = 2

PRIVATE_INTERVAL_S = 1.0
GROUP_INTERVAL_S = 3.0
GLOBAL_RATE_PER_S = 30

log = get_logger(__name__)


def is_group_chat_id(chat_id: int | str | None) -> bool:
    """Telegram group and channel ids are negative."""
    try:
        return chat_id is not None and int(chat_id) < 0
    except (TypeError, ValueError):
        return False


def default_interval(chat_id: int | None) -> float:
    """Reference pacing: 1 s between ops in a private chat, 3 s in a group."""
    return GROUP_INTERVAL_S if is_group_chat_id(chat_id) else PRIVATE_INTERVAL_S


@dataclass(eq=False)
class OutboxOp:
    """One queued Bot API write."""

    key: Hashable
    chat_id: int | None
    priority: int
    execute: Callable[[], Awaitable[Any]]
    label: str = "op"
    queued_at: float = 0.0
    attempts: int = 0
    not_before: float = 0.0
    result: Any = None
    done: anyio.Event = field(default_factory=anyio.Event)

    def finish(self, result: Any) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()


class TelegramOutbox:
    """Priority queue + per-chat pacer + dispatcher. Use as ``async with TelegramOutbox():``."""

    def __init__(
        self,
        *,
        interval_for: Callable[[int | None], float] = default_interval,
        global_rate: int = GLOBAL_RATE_PER_S,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_for = interval_for
        self._global_rate = max(1, global_rate)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._pending: dict[Hashable, OutboxOp] = {}
        self._busy: set[int | None] = set()
        self._next_at: dict[int | None, float] = {}
        self._retry_at: dict[int | None, float] = {}
        self._starts: deque[float] = deque()
        self._wakeup: anyio.Event | None = None
        self._seq = itertools.count()
        self._tg: TaskGroup | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> TelegramOutbox:
        self._wakeup = anyio.Event()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._dispatch)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        await self.close()
        assert self._tg is not None
        return await self._tg.__aexit__(*exc)

    @property
    def running(self) -> bool:
        return self._tg is not None and not self._closed

    async def close(self) -> None:
        """Stop dispatching; pending ops resolve to ``None``."""
        if self._closed:
            return
        self._closed = True
        for op in list(self._pending.values()):
            op.finish(None)
        self._pending.clear()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- queueing -------------------------------------------------------------------------
    def unique_key(self, prefix: str) -> tuple[str, int]:
        """A key no other op shares (for plain sends)."""
        return (prefix, next(self._seq))

    async def enqueue(
        self,
        key: Hashable,
        *,
        chat_id: int | None,
        priority: int,
        execute: Callable[[], Awaitable[Any]],
        label: str = "op",
        wait: bool = True,
    ) -> Any:
        """Queue an op under ``key``; with ``wait`` return its result (``None`` on failure)."""
        op = OutboxOp(key=key, chat_id=chat_id, priority=priority, execute=execute, label=label)
        if self._closed:
            return None
        if not self.running:
            # No dispatcher (used outside ``async with``): run it right away, unpaced.
            return await self._execute_direct(op)
        op.queued_at = self._clock()
        previous = self._pending.get(key)
        if previous is not None:
            op.queued_at = previous.queued_at
            previous.finish(None)
        self._pending[key] = op
        self._poke()
        if not wait:
            return None
        await op.done.wait()
        return op.result

    def drop_pending(self, key: Hashable) -> bool:
        """Forget a pending (not yet started) op; its waiter gets ``None``."""
        op = self._pending.pop(key, None)
        if op is None:
            return False
        op.finish(None)
        return True

    def pending_count(self) -> int:
        return len(self._pending)

    # -- dispatching ----------------------------------------------------------------------
    def _ready_time(self, op: OutboxOp) -> float:
        chat = op.chat_id
        return max(
            self._next_at.get(chat, 0.0),
            self._retry_at.get(chat, 0.0),
            op.not_before,
        )

    def _global_ready(self, now: float) -> float:
        while self._starts and self._starts[0] <= now - 1.0:
            self._starts.popleft()
        if len(self._starts) < self._global_rate:
            return now
        return self._starts[0] + 1.0

    def _pick(self, now: float) -> tuple[OutboxOp | None, float]:
        best: OutboxOp | None = None
        wake = math.inf
        for op in self._pending.values():
            if op.chat_id in self._busy:
                continue
            ready = self._ready_time(op)
            if ready > now:
                wake = min(wake, ready)
                continue
            if best is None or (op.priority, op.queued_at) < (best.priority, best.queued_at):
                best = op
        if best is not None:
            global_ready = self._global_ready(now)
            if global_ready > now:
                return None, global_ready
        return best, wake

    async def _dispatch(self) -> None:
        assert self._tg is not None
        while not self._closed:
            now = self._clock()
            op, wake = self._pick(now)
            if op is not None:
                self._pending.pop(op.key, None)
                self._busy.add(op.chat_id)
                self._starts.append(now)
                self._tg.start_soon(self._run, op, now)
                continue
            wakeup = self._wakeup = anyio.Event()
            if math.isinf(wake):
                await wakeup.wait()
            else:
                with anyio.move_on_after(max(0.0, wake - now)):
                    await wakeup.wait()

    def _poke(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _requeue(self, op: OutboxOp) -> None:
        if self._closed or op.key in self._pending:
            # superseded while in flight: the newer op carries the latest payload
            op.finish(None)
            return
        self._pending[op.key] = op

    def _backoff(self, attempts: int) -> float:
        return float(min(self._backoff_max_s, self._backoff_base_s * (2 ** (attempts - 1))))

    async def _run(self, op: OutboxOp, started: float) -> None:
        chat = op.chat_id
        try:
            op.attempts += 1
            result = await op.execute()
        except TelegramRetryAfter as exc:
            now = self._clock()
            self._retry_at[chat] = max(self._retry_at.get(chat, 0.0), now + exc.retry_after)
            log.info(
                "telegram.outbox.retry_after",
                method=op.label,
                chat_id=chat,
                retry_after=exc.retry_after,
            )
            self._requeue(op)
        except TelegramTransientError as exc:
            if op.attempts < self._max_attempts:
                delay = self._backoff(op.attempts)
                op.not_before = self._clock() + delay
                log.warning(
                    "telegram.outbox.transient_error",
                    method=op.label,
                    chat_id=chat,
                    error=exc.description,
                    attempt=op.attempts,
                    retry_in=delay,
                )
                self._requeue(op)
            else:
                log.error(
                    "telegram.outbox.request_failed",
                    method=op.label,
                    chat_id=chat,
                    error=exc.description,
                    attempts=op.attempts,
                )
                op.finish(None)
        except TelegramApiError as exc:
            log.warning(
                "telegram.outbox.request_failed",
                method=op.label,
                chat_id=chat,
                error=exc.description,
            )
            op.finish(None)
        except Exception as exc:
            log.error(
                "telegram.outbox.request_failed",
                method=op.label,
                chat_id=chat,
                error=f"{type(exc).__name__}: {exc}",
            )
            op.finish(None)
        else:
            op.finish(result)
        finally:
            self._next_at[chat] = started + self._interval_for(chat)
            self._busy.discard(chat)
            self._poke()

    async def _execute_direct(self, op: OutboxOp) -> Any:
        while True:
            try:
                op.attempts += 1
                return await op.execute()
            except TelegramRetryAfter as exc:
                await anyio.sleep(exc.retry_after)
            except TelegramTransientError as exc:
                if op.attempts >= self._max_attempts:
                    log.error(
                        "telegram.outbox.request_failed", method=op.label, error=exc.description
                    )
                    return None
                await anyio.sleep(self._backoff(op.attempts))
            except TelegramApiError as exc:
                log.warning(
                    "telegram.outbox.request_failed", method=op.label, error=exc.description
                )
                return None


__all__ = [
    "DELETE_PRIORITY",
    "EDIT_PRIORITY",
    "SEND_PRIORITY",
    "OutboxOp",
    "TelegramOutbox",
    "default_interval",
    "is_group_chat_id",
]
