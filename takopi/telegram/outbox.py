"""The Telegram outbox: every write to the Bot API goes through here.

Rules (behavior.md §1.6, with per-chat token buckets instead of the reference's global clock):

- one pending op per key; a newer op with the same key replaces the payload (the older
  waiter gets ``None``) but keeps the original place in the queue (``queued_at``);
- among ready ops the lowest ``(priority, queued_at)`` goes first: send=0 < delete=1 < edit=2;
- pacing is **per chat**: each chat has a token bucket, a send or edit spends a token, a
  progress edit (``wait=False``) only from spare capacity, a delete nothing; at most one op per chat is in flight, and a
  global sliding window caps the whole bot at ``global_rate`` writes per second — so an idle
  chat writes at once and a busy group does not slow a private chat down
  (:mod:`takopi.telegram.pacing` has the limits and why);
- 429 ⇒ that chat's bucket is emptied, the chat waits ``retry_after`` and the op is re-queued
  under its key (unless a newer op superseded it); transient errors (5xx, network) are retried
  with backoff up to ``max_attempts``; other errors are logged and give ``None``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.logging import get_logger

from .client_api import TelegramApiError, TelegramRetryAfter, TelegramTransientError
from .pacing import (
    BUCKET,
    GLOBAL_RATE_PER_S,
    Pacing,
    SlidingWindow,
    TokenBucket,
    default_interval,
    is_group_chat_id,
)

SEND_PRIORITY = 0
DELETE_PRIORITY = 1
EDIT_PRIORITY = 2
_KIND_BY_PRIORITY = {SEND_PRIORITY: "send", DELETE_PRIORITY: "delete", EDIT_PRIORITY: "edit"}

# Chats whose state is kept even when idle; beyond this, idle full buckets are forgotten.
_IDLE_CHATS_KEPT = 256

log = get_logger(__name__)


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
    background: bool = False
    paced: bool = False
    result: Any = None
    done: anyio.Event = field(default_factory=anyio.Event)

    @property
    def kind(self) -> str:
        """``"send"``, ``"delete"`` or ``"edit"`` (what the op costs), from its priority."""
        return _KIND_BY_PRIORITY.get(self.priority, "send")

    def finish(self, result: Any) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()


@dataclass
class OutboxStats:
    """Counters for tests and benchmarks."""

    started: int = 0
    """ops handed to the Bot API (retries included)"""
    paced: int = 0
    """ops that had to wait for their chat's bucket at least once"""
    globally_delayed: int = 0
    """times the global window held back a ready op"""
    retry_after: int = 0
    """429 answers received"""


@dataclass
class _ChatState:
    bucket: TokenBucket
    busy: bool = False
    retry_at: float = 0.0


class TelegramOutbox:
    """Priority queue + per-chat token buckets + dispatcher.

    Use as ``async with TelegramOutbox():``. ``interval_for(chat)`` is the seconds per token of
    a chat's bucket (``0``: unpaced), ``pacing`` how tokens are spent (burst, edit reserve,
    delete cost; :data:`~takopi.telegram.pacing.BUCKET` or the reference's clock).
    """

    def __init__(
        self,
        *,
        interval_for: Callable[[int | None], float] = default_interval,
        pacing: Pacing = BUCKET,
        global_rate: int = GLOBAL_RATE_PER_S,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_for = interval_for
        self.pacing = pacing
        self._max_attempts = max(1, max_attempts)
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._pending: dict[Hashable, OutboxOp] = {}
        self._chats: dict[int | None, _ChatState] = {}
        self._global = SlidingWindow(global_rate, 1.0)
        self._wakeup: anyio.Event | None = None
        self._seq = itertools.count()
        self._tg: TaskGroup | None = None
        self._closed = False
        self.stats = OutboxStats()

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
        op = OutboxOp(
            key=key,
            chat_id=chat_id,
            priority=priority,
            execute=execute,
            label=label,
            background=not wait,
        )
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

    def tokens(self, chat_id: int | None) -> float:
        """Tokens in ``chat_id``'s bucket now (a full bucket for a chat not seen yet)."""
        state = self._chats.get(chat_id)
        return self.pacing.burst if state is None else state.bucket.level(self._clock())

    # -- pacing ---------------------------------------------------------------------------
    def _chat(self, chat_id: int | None) -> _ChatState:
        state = self._chats.get(chat_id)
        if state is None:
            interval = self._interval_for(chat_id)
            rate = 1.0 / interval if interval > 0 else math.inf
            state = _ChatState(TokenBucket(self.pacing.burst, rate, self._clock()))
            self._chats[chat_id] = state
        return state

    def _forget_idle_chats(self, now: float) -> None:
        if len(self._chats) <= _IDLE_CHATS_KEPT:
            return
        waiting = {op.chat_id for op in self._pending.values()}
        for chat_id, state in list(self._chats.items()):
            if (
                chat_id not in waiting
                and not state.busy
                and state.retry_at <= now
                and state.bucket.full(now)
            ):
                del self._chats[chat_id]

    # -- dispatching ----------------------------------------------------------------------
    def _pick(self, now: float) -> tuple[OutboxOp | None, float]:
        best: OutboxOp | None = None
        wake = math.inf
        for op in self._pending.values():
            chat = self._chat(op.chat_id)
            if chat.busy:
                continue  # the chat's op in flight pokes the dispatcher when it finishes
            _cost, need = self.pacing.cost(op.kind, background=op.background)
            tokens_at = chat.bucket.ready_at(now, need)
            if tokens_at > now:
                op.paced = True
            ready = max(chat.retry_at, op.not_before, tokens_at)
            if ready > now:
                wake = min(wake, ready)
                continue
            if best is None or (op.priority, op.queued_at) < (best.priority, best.queued_at):
                best = op
        if best is not None:
            global_ready = self._global.ready_at(now)
            if global_ready > now:
                self.stats.globally_delayed += 1
                return None, global_ready
        return best, wake

    async def _dispatch(self) -> None:
        while not self._closed:
            now = self._clock()
            op, wake = self._pick(now)
            if op is not None:
                self._start(op, now)
                continue
            wakeup = self._wakeup = anyio.Event()
            if math.isinf(wake):
                await wakeup.wait()
            else:
                with anyio.move_on_after(max(0.0, wake - now)):
                    await wakeup.wait()

    def _start(self, op: OutboxOp, now: float) -> None:
        assert self._tg is not None
        self._pending.pop(op.key, None)
        chat = self._chat(op.chat_id)
        chat.busy = True
        cost, _need = self.pacing.cost(op.kind, background=op.background)
        chat.bucket.spend(now, cost)
        self._global.start()
        self.stats.started += 1
        if op.paced:
            self.stats.paced += 1
            op.paced = False
        self._tg.start_soon(self._run, op, chat)

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

    async def _run(self, op: OutboxOp, chat: _ChatState) -> None:
        chat_id = op.chat_id
        try:
            op.attempts += 1
            result = await op.execute()
        except TelegramRetryAfter as exc:
            now = self._clock()
            chat.retry_at = max(chat.retry_at, now + exc.retry_after)
            chat.bucket.drain(chat.retry_at)
            self.stats.retry_after += 1
            log.info(
                "telegram.outbox.retry_after",
                method=op.label,
                chat_id=chat_id,
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
                    chat_id=chat_id,
                    error=exc.description,
                    attempt=op.attempts,
                    retry_in=delay,
                )
                self._requeue(op)
            else:
                log.error(
                    "telegram.outbox.request_failed",
                    method=op.label,
                    chat_id=chat_id,
                    error=exc.description,
                    attempts=op.attempts,
                )
                op.finish(None)
        except TelegramApiError as exc:
            log.warning(
                "telegram.outbox.request_failed",
                method=op.label,
                chat_id=chat_id,
                error=exc.description,
            )
            op.finish(None)
        except Exception as exc:
            log.error(
                "telegram.outbox.request_failed",
                method=op.label,
                chat_id=chat_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            op.finish(None)
        else:
            op.finish(result)
        finally:
            # Telegram saw the request at some point before this answer: count it from here
            now = self._clock()
            chat.bucket.restart_refill(now)
            self._global.finish(now)
            chat.busy = False
            self._forget_idle_chats(now)
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
    "OutboxStats",
    "TelegramOutbox",
    "default_interval",
    "is_group_chat_id",
]
