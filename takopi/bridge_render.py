"""What the runner bridge shows while a run goes on: the progress message kept up to date
(:class:`ProgressEdits`), presenter calls that cannot lose a message (``render_*_safely``),
transport calls whose failure is logged instead of raised (``*_quietly``) and the user-facing
text of a runner failure (:func:`format_error`). Used by
:mod:`takopi.runner_bridge`, which re-exports these names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

from takopi.logging import get_logger
from takopi.model import ResumeToken, TakopiEvent
from takopi.presenter import MarkdownPresenter, Presenter
from takopi.progress import ProgressState, ProgressTracker
from takopi.transport import ChannelId, MessageRef, RenderedMessage, SendOptions, Transport

logger = get_logger("takopi.runner_bridge")

_FALLBACK_PRESENTER = MarkdownPresenter()


def render_progress_safely(
    presenter: Presenter, state: ProgressState, *, elapsed_s: float, label: str
) -> RenderedMessage:
    """``presenter.render_progress``; a failing presenter falls back to plain Markdown so that
    the user still gets a message."""
    try:
        return presenter.render_progress(state, elapsed_s=elapsed_s, label=label)
    except Exception as exc:
        logger.error("handle.render_failed", kind="progress", error=str(exc) or type(exc).__name__)
        return _FALLBACK_PRESENTER.render_progress(state, elapsed_s=elapsed_s, label=label)


def render_final_safely(
    presenter: Presenter, state: ProgressState, *, elapsed_s: float, status: str, answer: str
) -> RenderedMessage:
    """``presenter.render_final`` with the same fallback as :func:`render_progress_safely`."""
    try:
        return presenter.render_final(state, elapsed_s=elapsed_s, status=status, answer=answer)
    except Exception as exc:
        logger.error("handle.render_failed", kind="final", error=str(exc) or type(exc).__name__)
        return _FALLBACK_PRESENTER.render_final(
            state, elapsed_s=elapsed_s, status=status, answer=answer
        )


class ProgressEdits:
    """Re-renders the progress message when runner events change the tracker.

    Events only raise a flag (a one-slot memory stream), so a slow transport coalesces bursts
    into one edit with the latest state; renders equal to the last one sent are skipped.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        presenter: Presenter,
        progress_ref: MessageRef | None,
        tracker: ProgressTracker,
        started_at: float,
        clock: Callable[[], float],
        last_rendered: RenderedMessage | None,
        resume_formatter: Callable[[ResumeToken], str] | None,
        context_line: str | None,
        label: str = "working",
    ) -> None:
        self.transport = transport
        self.presenter = presenter
        self.progress_ref = progress_ref
        self.tracker = tracker
        self.started_at = started_at
        self.clock = clock
        self.last_rendered = last_rendered
        self.resume_formatter = resume_formatter
        self.context_line = context_line
        self.label = label
        self.event_seq = 0
        self.rendered_seq = 0
        self._send, self._recv = anyio.create_memory_object_stream[None](1)

    async def run(self) -> None:
        """Edit loop; runs until cancelled or :meth:`close` is called."""
        if self.progress_ref is None:
            return
        async with self._recv:
            while True:
                while self.rendered_seq == self.event_seq:
                    try:
                        await self._recv.receive()
                    except anyio.EndOfStream:
                        return
                seq = self.event_seq
                await self._render_and_edit()
                self.rendered_seq = seq

    async def _render_and_edit(self) -> None:
        assert self.progress_ref is not None
        state = self.tracker.snapshot(
            resume_formatter=self.resume_formatter, context_line=self.context_line
        )
        rendered = render_progress_safely(
            self.presenter, state, elapsed_s=self.clock() - self.started_at, label=self.label
        )
        if rendered == self.last_rendered:
            return
        try:
            edited = await self.transport.edit(ref=self.progress_ref, message=rendered, wait=False)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            logger.warning("handle.progress_edit_failed", error=str(exc) or type(exc).__name__)
            return
        if edited is not None:
            self.last_rendered = rendered

    async def on_event(self, event: TakopiEvent) -> None:
        """Fold ``event`` into the tracker and wake the edit loop if something changed."""
        if not self.tracker.note_event(event):
            return
        if self.progress_ref is None:
            return
        self.event_seq += 1
        try:
            self._send.send_nowait(None)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def close(self) -> None:
        """Stop feeding the edit loop."""
        self._send.close()


async def send_quietly(
    transport: Transport,
    *,
    channel_id: ChannelId,
    message: RenderedMessage,
    options: SendOptions,
) -> MessageRef | None:
    """``transport.send``; a failure is logged and gives None (cancellation propagates)."""
    try:
        return await transport.send(channel_id=channel_id, message=message, options=options)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        logger.error("handle.send_failed", error=str(exc) or type(exc).__name__)
        return None


async def edit_quietly(
    transport: Transport, *, ref: MessageRef, message: RenderedMessage
) -> MessageRef | None:
    """``transport.edit`` (waiting for it); a failure is logged and gives None."""
    try:
        return await transport.edit(ref=ref, message=message, wait=True)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        logger.error("handle.edit_failed", error=str(exc) or type(exc).__name__)
        return None


async def delete_quietly(transport: Transport, *, ref: MessageRef) -> None:
    """``transport.delete``; a failure is only logged."""
    try:
        await transport.delete(ref=ref)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        logger.warning("handle.delete_failed", error=str(exc) or type(exc).__name__)


def _flatten_exceptions(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        flat: list[BaseException] = []
        for inner in error.exceptions:
            flat.extend(_flatten_exceptions(inner))
        return flat
    return [error]


def _cancelled_exc_class() -> type[BaseException]:
    try:
        return anyio.get_cancelled_exc_class()
    except Exception:  # no running event loop
        return asyncio.CancelledError


def format_error(error: BaseException) -> str:
    """User-facing text for a runner exception: exception groups flattened, cancellation
    dropped, one message per line."""
    cancelled = _cancelled_exc_class()
    flat = [exc for exc in _flatten_exceptions(error) if not isinstance(exc, cancelled)]
    if not flat:
        return str(error) or type(error).__name__
    messages = [str(exc) or type(exc).__name__ for exc in flat]
    unique = list(dict.fromkeys(messages))
    return "\n".join(unique)


__all__ = [
    "ProgressEdits",
    "delete_quietly",
    "edit_quietly",
    "format_error",
    "render_final_safely",
    "render_progress_safely",
    "send_quietly",
]
