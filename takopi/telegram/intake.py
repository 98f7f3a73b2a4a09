"""Tell the runtime which messages this transport took, and when their handling is over.

Under a supervisor the runtime records each taken message before the next ``getUpdates``
confirms it to Telegram; if this worker dies before the message ran, its successor replies
``interrupted`` to it instead of the message vanishing. The handling of a message is over
once :meth:`~takopi.telegram.routing.MessageRouter.route` returned and every task started on
its behalf in the loop's task group (background steps, the forward coalescer, media groups,
the thread scheduler, the run itself) finished: :class:`HoldingTaskGroup` makes each hold the
message's :class:`Hold` (found in a context variable, which tasks inherit). Without a
supervisor the runtime has no such methods and all of this is a no-op.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from takopi.logging import get_logger

from .types import TelegramIncomingMessage

log = get_logger(__name__)


class Hold:
    """One taken message; released once per holder, reported done at zero."""

    __slots__ = ("_done", "address", "count")

    def __init__(self, address: dict[str, Any], done: Callable[[Hold], None]) -> None:
        self.address = address
        self.count = 1
        self._done = done

    def acquire(self) -> Hold:
        self.count += 1
        return self

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._done(self)


CURRENT: contextvars.ContextVar[Hold | None] = contextvars.ContextVar(
    "takopi_telegram_intake", default=None
)


def hold_current() -> Hold | None:
    """The hold of the message being handled here, acquired once more (or None)."""
    hold = CURRENT.get()
    return hold.acquire() if hold is not None else None


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
            try:
                await fn(*args)
            finally:
                hold.release()

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

    async def taken(self, msg: TelegramIncomingMessage) -> Hold | None:
        """Report ``msg`` (before the next poll confirms it); its hold, or None when the
        runtime does not track messages."""
        if self._note is None:
            return None
        address = {
            "channel_id": msg.chat_id,
            "message_id": msg.message_id,
            "thread_id": msg.thread_id,
        }
        try:
            await self._note(**address, seq=getattr(msg, "update_id", None))
        except Exception as exc:  # the message is still handled, only maybe not protected
            # The supervisor may have recorded it all the same (a call that timed out):
            # report it handled anyway, or it would stay open and be answered "interrupted"
            # at the next transport restart. Clearing an unknown message is a no-op there.
            log.warning("telegram.intake.failed", error=str(exc))
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


__all__ = ["CURRENT", "Hold", "HoldingTaskGroup", "IntakeReporter", "hold_current"]
