"""Tell the runtime which messages this transport took, and when their handling is over.

Under a supervisor the runtime records each taken message before the next ``getUpdates``
confirms it to Telegram; if this worker dies before the message ran, its successor replies
``interrupted`` to it instead of the message vanishing. The handling of a message is over
once :meth:`~takopi.telegram.routing.MessageRouter.route` returned and every task started on
its behalf in the loop's task group (background steps, the forward coalescer, media groups,
the thread scheduler, the run itself) finished: :class:`HoldingTaskGroup` makes each hold the
message's :class:`Hold` (found in a context variable, which tasks inherit). Without a
supervisor the runtime has no such methods and all of this is a no-op.

Messages handled together (a prompt and the forwards coalesced into it, the files of an
album) are kept by :class:`HeldMessages` while they wait, not by the task that waits for
them (timers run :func:`detached`). Their combined prompt then runs under the *lead*
message's hold (the one the run replies to, which the supervisor settles when it journals
the run); the others ride along (:meth:`Hold.carry`) and are reported handled once that run
is handed to the launcher (:func:`run_launched`) or the lead's handling ends: each message
has one terminal outcome, the combined run's. A message whose handling is cut short by
cancellation (the worker is stopping) is *abandoned*: never reported handled, so the
supervisor still owes it a reply (re-taken by the successor or ``interrupted``).

A message the runtime answered already (its run began, or it was answered ``interrupted``;
Telegram offered it again because its confirmation was lost: a worker killed before its next
poll, a failed stop-time confirm) is reported :data:`ANSWERED` by
:meth:`IntakeReporter.taken`: the loop ignores it entirely, and its next poll confirms it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

import anyio

from takopi.logging import get_logger
from takopi.protocol.runs import ALREADY_ANSWERED

from .types import TelegramIncomingMessage

log = get_logger(__name__)

ANSWERED: Final = "answered"
""":meth:`IntakeReporter.taken` for a message the runtime answered already."""


class Hold:
    """One taken message; released once per holder, reported done at zero (unless
    abandoned). It may carry the holds of messages handled as part of it."""

    __slots__ = ("_carried", "_done", "abandoned", "address", "count")

    def __init__(self, address: dict[str, Any], done: Callable[[Hold], None]) -> None:
        self.address = address
        self.count = 1
        self.abandoned = False
        self._done = done
        self._carried: list[Hold] = []

    def acquire(self) -> Hold:
        self.count += 1
        return self

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.settle_carried()
            if not self.abandoned:
                self._done(self)

    def abandon(self) -> None:
        """Its handling was cut short (cancelled): never report it (nor what it carries)
        handled; the supervisor answers it when this worker is gone."""
        self.abandoned = True
        for hold in self._carried:
            hold.abandon()

    def carry(self, others: list[Hold]) -> None:
        """``others`` (one reference each, handed over) are handled as part of this message."""
        for hold in others:
            if self.abandoned:
                hold.abandon()
            self._carried.append(hold)

    def settle_carried(self) -> None:
        """Release the carried holds: their content went into this message's run."""
        carried, self._carried = self._carried, []
        for hold in carried:
            hold.release()


CURRENT: contextvars.ContextVar[Hold | None] = contextvars.ContextVar(
    "takopi_telegram_intake", default=None
)


def hold_current() -> Hold | None:
    """The hold of the message being handled here, acquired once more (or None)."""
    hold = CURRENT.get()
    return hold.acquire() if hold is not None else None


def run_launched() -> None:
    """The current message's run was handed to the launcher: the messages riding along with
    it are handled (from here on the run, journaled under this message, answers for them)."""
    hold = CURRENT.get()
    if hold is not None:
        hold.settle_carried()


@contextmanager
def detached() -> Iterator[None]:
    """No message is being handled in this block (tasks started here hold nothing)."""
    token = CURRENT.set(None)
    try:
        yield
    finally:
        CURRENT.reset(token)


def release_held(hold: Hold | None, exc: BaseException | None) -> None:
    """Drop one reference to ``hold``; ``exc``: what ended its holder (a cancellation
    abandons the message, see the module docstring)."""
    if hold is None:
        return
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        hold.abandon()
    hold.release()


class HeldMessages:
    """Holds of messages waiting to be handled together (per message id, one reference
    each), kept by the data structure that buffers them rather than by a task."""

    __slots__ = ("_holds",)

    def __init__(self) -> None:
        self._holds: dict[int, Hold] = {}

    def add(self, msg: TelegramIncomingMessage) -> None:
        """Keep ``msg`` open (its hold is the current one) until handled or dropped."""
        if msg.message_id in self._holds:
            return
        hold = hold_current()
        if hold is not None:
            self._holds[msg.message_id] = hold

    def drop(self, msg: TelegramIncomingMessage) -> None:
        """``msg``'s handling is over without a run (e.g. a newer prompt replaced it)."""
        hold = self._holds.pop(msg.message_id, None)
        if hold is not None:
            hold.release()

    def drop_all(self, exc: BaseException | None = None) -> None:
        """Every message's handling is over (``exc``: see :func:`release_held`)."""
        holds = list(self._holds.values())
        self._holds.clear()
        for hold in holds:
            release_held(hold, exc)

    @contextmanager
    def handled_as(self, lead: TelegramIncomingMessage) -> Iterator[None]:
        """Handle them all as ``lead``: its hold is current in the block, the others ride
        along with it (see the module docstring)."""
        hold = self._holds.pop(lead.message_id, None)
        others = list(self._holds.values())
        self._holds.clear()
        if hold is not None:
            hold.carry(others)
        else:  # nothing is tracked (no supervisor), or the lead was never kept
            for other in others:
                other.release()
        token = CURRENT.set(hold)
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            CURRENT.reset(token)
            release_held(hold, error)


class HoldingTaskGroup:
    """Wraps the loop's task group: a task started while a message is being handled holds
    that message until it ends (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> None:
        hold = hold_current()
        if hold is None:
            self._inner.start_soon(fn, *args, name=name)
            return

        async def held() -> None:
            error: BaseException | None = None
            try:
                await fn(*args)
            except BaseException as exc:
                error = exc
                raise
            finally:
                release_held(hold, error)

        try:
            self._inner.start_soon(held, name=name or getattr(fn, "__qualname__", None))
        except BaseException:
            hold.release()
            raise

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> Any:
        return await self._inner.start(fn, *args, name=name)

    def __getattr__(self, name: str) -> Any:  # cancel_scope and the rest
        return getattr(self._inner, name)


class IntakeReporter:
    """Reports taken and handled messages to runtimes that want them."""

    def __init__(self, runtime: Any, spawn: Callable[..., None]) -> None:
        self._note = getattr(runtime, "note_incoming", None)
        self._handled = getattr(runtime, "incoming_handled", None)
        self._spawn = spawn
        self.last_seq: int | None = None
        """The highest ``seq`` (Telegram ``update_id``) reported taken (None: none, or the
        runtime does not track messages)."""

    async def taken(self, msg: TelegramIncomingMessage) -> Hold | Literal["answered"] | None:
        """Report ``msg`` (before the next poll confirms it); its hold, None when the runtime
        does not track messages, or :data:`ANSWERED` when the runtime answered it already
        (it must not be handled again). Any answer of ``note_incoming`` but
        ``ALREADY_ANSWERED`` (``None``, ``True``: older runtimes) means a new message."""
        if self._note is None:
            return None
        seq = getattr(msg, "update_id", None)
        address = {
            "channel_id": msg.chat_id,
            "message_id": msg.message_id,
            "thread_id": msg.thread_id,
        }
        try:
            answer = await self._note(**address, seq=seq)
        except Exception as exc:  # the message is still handled, only maybe not protected
            # The supervisor may have recorded it all the same (a call that timed out):
            # report it handled anyway, or it would stay open and be answered "interrupted"
            # at the next transport restart. Clearing an unknown message is a no-op there.
            # It is not confirmed at a stop, though: maybe unrecorded, it had better be
            # offered again than lost.
            log.warning("telegram.intake.failed", error=str(exc))
        else:
            # Recorded (not cancelled during the call): a stopping loop may confirm it.
            if isinstance(seq, int) and (self.last_seq is None or seq > self.last_seq):
                self.last_seq = seq
            if isinstance(answer, str) and answer == ALREADY_ANSWERED:
                return ANSWERED
        return Hold(address, self._report_done)

    def _report_done(self, hold: Hold) -> None:
        handled = self._handled
        if handled is None:
            return

        async def report() -> None:
            try:
                await handled(**hold.address)
            except Exception as exc:
                log.warning("telegram.intake_done.failed", error=str(exc))

        # Called from the last holder, maybe a held task whose context still names this
        # hold: the report itself must not hold it (it would be reported again and again).
        token = CURRENT.set(None)
        try:
            self._spawn(report)
        except RuntimeError:  # the loop is shutting down: the supervisor settles it then
            pass
        finally:
            CURRENT.reset(token)


__all__ = [
    "ANSWERED",
    "CURRENT",
    "HeldMessages",
    "Hold",
    "HoldingTaskGroup",
    "IntakeReporter",
    "detached",
    "hold_current",
    "release_held",
    "run_launched",
]
