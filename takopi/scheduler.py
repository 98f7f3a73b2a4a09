"""Per-thread FIFO of follow-up runs (resume jobs).

Only resume jobs are queued: two runs on the same thread (``"<engine>:<token>"``) must not
overlap, runs on different threads run in parallel. One worker task exists per thread that
has queued jobs; it exits as soon as its queue is empty. Queued jobs are plain data, never
tasks, so a long queue costs only memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import anyio

from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.model import ResumeToken
from takopi.transport import ChannelId, MessageId, MessageRef, ThreadId

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ThreadJob:
    """A follow-up prompt waiting for its thread to be free."""

    chat_id: ChannelId
    user_msg_id: MessageId
    text: str
    resume_token: ResumeToken
    context: RunContext | None = None
    thread_id: ThreadId | None = None
    session_key: Any = None
    progress_ref: MessageRef | None = None


RunJob: TypeAlias = Callable[[ThreadJob], Awaitable[None]]


class TaskGroup(Protocol):
    """What the scheduler needs from an anyio task group."""

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None: ...


class ThreadScheduler:
    """Runs queued :class:`ThreadJob`\\ s one at a time per thread, in arrival order."""

    def __init__(self, *, task_group: TaskGroup, run_job: RunJob) -> None:
        self._task_group = task_group
        self._run_job = run_job
        self._queues: dict[str, deque[ThreadJob]] = {}
        self._workers: set[str] = set()
        self._busy_until: dict[str, anyio.Event] = {}
        self._prune_at = 64

    @staticmethod
    def thread_key(token: ResumeToken) -> str:
        """``"<engine>:<token>"``."""
        return f"{token.engine}:{token.value}"

    def _prune_busy(self) -> None:
        if len(self._busy_until) < self._prune_at:
            return
        for key in [k for k, ev in self._busy_until.items() if ev.is_set()]:
            del self._busy_until[key]
        self._prune_at = max(64, 2 * len(self._busy_until))

    async def note_thread_known(self, token: ResumeToken, done: anyio.Event) -> None:
        """A run now owns ``token``'s thread until ``done`` is set: queued jobs wait for it."""
        key = self.thread_key(token)
        current = self._busy_until.get(key)
        if current is None or current.is_set():
            self._busy_until[key] = done
        self._prune_busy()

    def is_busy(self, token: ResumeToken) -> bool:
        """Whether a run holds ``token``'s thread or jobs are queued/running for it."""
        key = self.thread_key(token)
        busy = self._busy_until.get(key)
        return key in self._workers or (busy is not None and not busy.is_set())

    def pending(self, token: ResumeToken | None = None) -> list[ThreadJob]:
        """Jobs still queued (for one thread, or all), oldest first."""
        if token is not None:
            return list(self._queues.get(self.thread_key(token), ()))
        return [job for queue in self._queues.values() for job in queue]

    async def enqueue(self, job: ThreadJob) -> None:
        """Queue ``job`` behind earlier jobs of its thread; starts the thread's worker if idle."""
        key = self.thread_key(job.resume_token)
        self._queues.setdefault(key, deque()).append(job)
        if key in self._workers:
            return
        self._workers.add(key)
        self._task_group.start_soon(self._worker, key)

    async def enqueue_resume(
        self,
        chat_id: ChannelId,
        user_msg_id: MessageId,
        text: str,
        resume_token: ResumeToken,
        context: RunContext | None = None,
        thread_id: ThreadId | None = None,
        session_key: Any = None,
        progress_ref: MessageRef | None = None,
    ) -> None:
        """Build a :class:`ThreadJob` from the arguments and :meth:`enqueue` it."""
        await self.enqueue(
            ThreadJob(
                chat_id=chat_id,
                user_msg_id=user_msg_id,
                text=text,
                resume_token=resume_token,
                context=context,
                thread_id=thread_id,
                session_key=session_key,
                progress_ref=progress_ref,
            )
        )

    def cancel_queued(self, chat_id: ChannelId, progress_message_id: MessageId) -> ThreadJob | None:
        """Remove the queued job whose progress placeholder is ``progress_message_id``.

        Returns the removed job, or ``None`` if no queued job matches (it may be running).
        """
        for key, queue in self._queues.items():
            for job in queue:
                ref = job.progress_ref
                if (
                    ref is not None
                    and ref.channel_id == chat_id
                    and ref.message_id == progress_message_id
                ):
                    queue.remove(job)
                    _log.info("scheduler.cancelled_queued", key=key, chat_id=chat_id)
                    return job
        return None

    async def _worker(self, key: str) -> None:
        try:
            while True:
                queue = self._queues.get(key)
                if not queue:
                    self._queues.pop(key, None)
                    return
                busy = self._busy_until.get(key)
                if busy is not None and not busy.is_set():
                    # Wait without taking the job so it can still be cancelled meanwhile.
                    await busy.wait()
                    continue
                job = queue.popleft()
                try:
                    await self._run_job(job)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    _log.error(
                        "scheduler.job_failed",
                        key=key,
                        chat_id=job.chat_id,
                        user_msg_id=job.user_msg_id,
                        error=str(exc),
                        error_type=type(exc).__name__,
                        exc_info=exc,
                    )
        finally:
            self._workers.discard(key)
            if not self._queues.get(key):
                self._queues.pop(key, None)


__all__ = ["RunJob", "TaskGroup", "ThreadJob", "ThreadScheduler"]
