"""Run registry: every run in flight, per-thread serialization across transports, cancel routing.

A *thread key* is ``"<engine>:<resume token>"``. At most one run holds a key at a time, no
matter which transport started it; the others wait in FIFO order. A resumed run takes its key
before it starts; a new run takes the key of the token its ``started`` event reveals.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

RunState = Literal["queued", "running", "detached", "finishing"]


def thread_key(engine: str, token: str) -> str:
    """The serialization key of one engine session."""
    return f"{engine}:{token}"


@dataclass(slots=True)
class RunRecord:
    """One run the supervisor is driving."""

    run_id: str
    engine: str
    transport: str
    key: str | None = None
    state: RunState = "queued"
    created: float = field(default_factory=time.time)
    origin: dict[str, Any] = field(default_factory=dict)
    resume_line: str | None = None
    cancel_scope: anyio.CancelScope | None = None
    cancel_reason: str | None = None
    consumer_attached: bool = True
    events: int = 0

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for ``takopictl runs``."""
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "transport": self.transport,
            "thread": self.key,
            "state": self.state,
            "age_s": round(time.time() - self.created, 3),
            "events": self.events,
            "channel_id": self.origin.get("channel_id"),
            "message_id": self.origin.get("message_id"),
            "resume_line": self.resume_line,
        }


class _KeyLock:
    """A FIFO lock for one thread key (waiters woken strictly in arrival order)."""

    __slots__ = ("holder", "waiters")

    def __init__(self) -> None:
        self.holder: str | None = None
        self.waiters: deque[tuple[str, anyio.Event]] = deque()


class RunRegistry:
    """Tracks runs and serializes them per thread key."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self._locks: dict[str, _KeyLock] = {}
        self.accepting = True

    def new_run(
        self,
        *,
        engine: str,
        transport: str,
        origin: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunRecord:
        """Register a run (``run_id`` from the caller must be unique, else one is made)."""
        if not run_id or run_id in self.runs:
            run_id = uuid.uuid4().hex
        record = RunRecord(run_id=run_id, engine=engine, transport=transport, origin=origin or {})
        self.runs[run_id] = record
        return record

    def finish(self, run_id: str) -> None:
        """Forget a run and release its key (idempotent)."""
        record = self.runs.pop(run_id, None)
        if record is not None and record.key is not None:
            self.release(record.key, run_id)

    async def acquire(self, key: str, run_id: str) -> None:
        """Wait (FIFO) until ``run_id`` holds ``key``."""
        lock = self._locks.setdefault(key, _KeyLock())
        if lock.holder is None and not lock.waiters:
            lock.holder = run_id
            return
        if lock.holder == run_id:
            return
        event = anyio.Event()
        lock.waiters.append((run_id, event))
        try:
            await event.wait()
        except BaseException:
            # Cancelled while waiting: leave the queue, or pass the key on if it was granted.
            if lock.holder == run_id:
                self.release(key, run_id)
            else:
                try:
                    lock.waiters.remove((run_id, event))
                except ValueError:
                    pass
            raise

    def release(self, key: str, run_id: str) -> None:
        """Give ``key`` to the next waiter (no-op if ``run_id`` does not hold it)."""
        lock = self._locks.get(key)
        if lock is None or lock.holder != run_id:
            return
        if lock.waiters:
            next_id, event = lock.waiters.popleft()
            lock.holder = next_id
            event.set()
        else:
            lock.holder = None
            del self._locks[key]

    @asynccontextmanager
    async def holding(self, key: str, run_id: str) -> AsyncIterator[None]:
        """``async with registry.holding(key, run_id):`` — acquire then always release."""
        await self.acquire(key, run_id)
        try:
            yield
        finally:
            self.release(key, run_id)

    def queue_position(self, key: str, run_id: str) -> int | None:
        """0 when holding ``key``, 1.. when waiting, None when unrelated."""
        lock = self._locks.get(key)
        if lock is None:
            return None
        if lock.holder == run_id:
            return 0
        for index, (waiter, _event) in enumerate(lock.waiters, 1):
            if waiter == run_id:
                return index
        return None

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel one run (its driver sees the cancel scope fire); False if unknown."""
        record = self.runs.get(run_id)
        if record is None:
            return False
        record.cancel_reason = reason
        if record.cancel_scope is not None:
            record.cancel_scope.cancel()
        return True

    def cancel_all(self, reason: str) -> int:
        """Cancel every run; returns how many."""
        count = 0
        for run_id in list(self.runs):
            count += self.cancel(run_id, reason)
        return count

    def describe(self) -> list[dict[str, Any]]:
        """Summaries of every run, oldest first."""
        return [r.describe() for r in sorted(self.runs.values(), key=lambda r: r.created)]


__all__ = ["RunRecord", "RunRegistry", "thread_key"]
