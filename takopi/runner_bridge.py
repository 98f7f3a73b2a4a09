"""The bridge between one incoming chat message and one engine run.

:func:`handle_message` sends a silent ``starting`` progress message at once, re-renders it
whenever a runner event changes what would be shown (no timer; identical renders are not sent;
edits are fire-and-forget), and ends with exactly one final message: ``done``/``error`` (a new
notifying reply with the progress message deleted, or the progress message edited in place when
``final_notify`` is off), an ``error`` for runner exceptions, or `` `cancelled` `` when
:class:`RunningTask.cancel_requested` is set. The resume line is kept whenever the run's
``started`` event was seen.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import structlog

from takopi.bridge_hooks import exec_config_created
from takopi.bridge_render import (
    ProgressEdits,
    delete_quietly,
    edit_quietly,
    format_error,
    render_final_safely,
    render_progress_safely,
    send_quietly,
)
from takopi.context import RunContext
from takopi.logging import bind_run_context, clear_context, get_logger
from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.presenter import Presenter
from takopi.progress import ProgressState, ProgressTracker
from takopi.transport import (
    ChannelId,
    MessageId,
    MessageRef,
    RenderedMessage,
    SendOptions,
    ThreadId,
    Transport,
)
from takopi.transport_runtime import strip_resume_lines

if TYPE_CHECKING:
    from takopi.runner import Runner

logger = get_logger(__name__)

_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ExecBridgeConfig:
    """The transport and presenter a bridge run talks to.

    ``final_notify``: send the final answer as a new notifying reply (and delete the progress
    message) instead of editing the progress message in place.
    """

    transport: Transport
    presenter: Presenter
    final_notify: bool = True

    def __post_init__(self) -> None:
        exec_config_created(self)  # a transport worker may deliver through these (bridge_hooks)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A user message, normalised by the transport."""

    channel_id: ChannelId
    message_id: MessageId
    text: str
    reply_to: MessageRef | None = None
    thread_id: ThreadId | None = None


@dataclass(slots=True)
class RunningTask:
    """Coordination handle of one run, keyed in :data:`RunningTasks` by its progress message.

    ``resume`` is set (and ``resume_ready`` fired) once the run's token is known — or when the
    run ends without one. Setting ``cancel_requested`` cancels the run; ``done`` fires when the
    run is over.
    """

    resume: ResumeToken | None = None
    resume_ready: anyio.Event = field(default_factory=anyio.Event)
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    context: RunContext | None = None


RunningTasks: TypeAlias = dict[MessageRef, RunningTask]


@dataclass(frozen=True, slots=True)
class RunOrigin:
    """Where a run's outcome must be delivered (read by the transport worker's runner proxy).

    ``on_settled`` callbacks are called once :func:`handle_message` is done with the run, with
    ``True`` when its terminal message reached the transport and ``False`` otherwise, so a
    runner can tell its host that the reply is really out (not merely consumed).
    """

    channel_id: ChannelId
    message_id: MessageId
    thread_id: ThreadId | None = None
    progress_ref: MessageRef | None = None
    context_line: str | None = None
    on_settled: list[Callable[[bool], Any]] = field(default_factory=list, compare=False)


current_run_origin: ContextVar[RunOrigin | None] = ContextVar(
    "takopi_current_run_origin", default=None
)

OnThreadKnown: TypeAlias = Callable[[ResumeToken, anyio.Event], Awaitable[None] | None]


@dataclass(slots=True)
class ExecOutcome:
    """What a runner produced: its token, its completed event, whether it was cancelled."""

    resume: ResumeToken | None = None
    completed: CompletedEvent | None = None
    cancelled: bool = False
    event_count: int = 0


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


async def _close_iterator(iterator: AsyncIterator[TakopiEvent]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
        try:
            await aclose()
        except Exception as exc:
            logger.warning("handle.runner_close_failed", error=str(exc) or type(exc).__name__)


def _log_event(event: TakopiEvent) -> None:
    if isinstance(event, StartedEvent):
        logger.info("runner.started", resume=event.resume.value, title=event.title)
    elif isinstance(event, ActionEvent):
        logger.debug(
            "runner.action",
            phase=event.phase,
            action_id=event.action.id,
            kind=event.action.kind,
            ok=event.ok,
        )
    elif isinstance(event, CompletedEvent):
        logger.info("runner.completed_event", ok=event.ok, answer_len=len(event.answer or ""))


async def run_runner_with_cancel(
    runner: Runner,
    *,
    prompt: str,
    resume_token: ResumeToken | None,
    edits: ProgressEdits,
    running_task: RunningTask,
    on_thread_known: OnThreadKnown | None = None,
) -> ExecOutcome:
    """Iterate ``runner.run`` until it ends or ``running_task.cancel_requested`` is set.

    Runner exceptions propagate (wrapped in an exception group by the task group).
    """
    outcome = ExecOutcome()

    async def consume(scope: anyio.CancelScope) -> None:
        iterator = runner.run(prompt, resume_token)
        try:
            async for event in iterator:
                outcome.event_count += 1
                _log_event(event)
                if isinstance(event, StartedEvent):
                    outcome.resume = event.resume
                    bind_run_context(resume=event.resume.value)
                    if running_task.resume is None:
                        running_task.resume = event.resume
                        try:
                            if on_thread_known is not None:
                                await _maybe_await(on_thread_known(event.resume, running_task.done))
                        except Exception as exc:
                            # A scheduler bug must not abort the user's run.
                            logger.error(
                                "handle.on_thread_known_failed",
                                error=str(exc) or type(exc).__name__,
                            )
                        finally:
                            running_task.resume_ready.set()
                elif isinstance(event, CompletedEvent):
                    if event.resume is not None:
                        outcome.resume = event.resume
                    if outcome.completed is None:
                        outcome.completed = event
                await edits.on_event(event)
        finally:
            await _close_iterator(iterator)
            scope.cancel()

    async def watch_cancel(scope: anyio.CancelScope) -> None:
        await running_task.cancel_requested.wait()
        outcome.cancelled = True
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, tg.cancel_scope)
        tg.start_soon(watch_cancel, tg.cancel_scope)
    return outcome


async def send_result_message(
    cfg: ExecBridgeConfig,
    *,
    channel_id: ChannelId,
    reply_to: MessageRef | None,
    progress_ref: MessageRef | None,
    message: RenderedMessage,
    notify: bool,
    edit_ref: MessageRef | None,
    thread_id: ThreadId | None = None,
) -> MessageRef | None:
    """Deliver a terminal message: edit ``edit_ref`` in place, else send a new reply (which
    replaces and then deletes the progress message)."""
    if edit_ref is not None:
        edited = await edit_quietly(cfg.transport, ref=edit_ref, message=message)
        if edited is not None:
            return edited
    options = SendOptions(
        reply_to=reply_to, notify=notify, replace=progress_ref, thread_id=thread_id
    )
    sent = await send_quietly(
        cfg.transport, channel_id=channel_id, message=message, options=options
    )
    if sent is None:
        logger.error("handle.result_delivery_failed", channel_id=channel_id)
        return None
    if progress_ref is not None and sent != progress_ref:
        await delete_quietly(cfg.transport, ref=progress_ref)
    return sent


async def send_runner_unavailable(
    cfg: ExecBridgeConfig,
    *,
    incoming: IncomingMessage,
    engine: str,
    issue: str | None,
    resume_token: ResumeToken | None = None,
    resume_formatter: Callable[[ResumeToken], str] | None = None,
    context_line: str | None = None,
) -> MessageRef | None:
    """Reply ``error:\n<issue>`` (header ``error · <engine> · 0s``) when the selected engine
    cannot run; the resume line is kept when a token and formatter are given."""
    tracker = ProgressTracker(engine)
    tracker.set_resume(resume_token)
    state = tracker.snapshot(resume_formatter=resume_formatter, context_line=context_line)
    reason = issue or f"engine {engine!r} is unavailable"
    message = render_final_safely(
        cfg.presenter, state, elapsed_s=0.0, status="error", answer=f"error:\n{reason}"
    )
    reply_to = MessageRef(
        channel_id=incoming.channel_id,
        message_id=incoming.message_id,
        thread_id=incoming.thread_id,
    )
    logger.info("handle.runner_unavailable", engine=engine, issue=reason)
    options = SendOptions(reply_to=reply_to, notify=True, thread_id=incoming.thread_id)
    return await send_quietly(
        cfg.transport, channel_id=incoming.channel_id, message=message, options=options
    )


def _final_answer(completed: CompletedEvent) -> tuple[str, str]:
    """(status, answer) of a completed run, as shown to the user."""
    answer = completed.answer or ""
    if not completed.ok:
        if completed.error:
            answer = f"{answer}\n\n{completed.error}" if answer.strip() else str(completed.error)
        return "error", answer
    return ("done" if answer.strip() else "error"), answer


@dataclass(eq=False)
class BridgeRun:
    """One incoming message being run on one runner and rendered into the chat.

    Holds what :func:`handle_message` works with across its steps — the bridge config, the
    runner, the user's message, the progress tracker and message, the :class:`RunningTask` —
    so each step is a method instead of a function taking the whole state as parameters.
    """

    cfg: ExecBridgeConfig
    runner: Runner
    incoming: IncomingMessage
    resume_token: ResumeToken | None
    context: RunContext | None = None
    context_line: str | None = None
    running_tasks: RunningTasks | None = None
    on_thread_known: OnThreadKnown | None = None
    clock: Callable[[], float] = time.monotonic
    started_at: float = 0.0
    progress_ref: MessageRef | None = None
    """The progress message once sent (or the placeholder given to reuse)."""
    tracker: ProgressTracker = field(init=False)
    running_task: RunningTask = field(init=False)
    user_ref: MessageRef = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = ProgressTracker(self.runner.engine)
        self.running_task = RunningTask(context=self.context)
        self.user_ref = MessageRef(
            channel_id=self.incoming.channel_id,
            message_id=self.incoming.message_id,
            thread_id=self.incoming.thread_id,
        )

    @property
    def resume_formatter(self) -> Callable[[ResumeToken], str]:
        """The runner's resume line formatter."""
        return self.runner.format_resume

    def snapshot(self) -> ProgressState:
        """What the progress/final message shows right now."""
        return self.tracker.snapshot(
            resume_formatter=self.resume_formatter, context_line=self.context_line
        )

    def prompt(self, strip_resume_line: Callable[[str], bool] | None) -> str:
        """The message text without resume lines (the runner's own predicate by default)."""
        is_resume_line = strip_resume_line or self.runner.is_resume_line
        return strip_resume_lines(self.incoming.text or "", is_resume_line=is_resume_line)

    async def execute(self, *, strip_resume_line: Callable[[str], bool] | None) -> None:
        """Send the progress message, run, send the final message, settle the origin."""
        logger.info("handle.incoming", text=self.incoming.text)
        prompt = self.prompt(strip_resume_line)
        initial = await self._open_progress()
        edits = ProgressEdits(
            transport=self.cfg.transport,
            presenter=self.cfg.presenter,
            progress_ref=self.progress_ref,
            tracker=self.tracker,
            started_at=self.started_at,
            clock=self.clock,
            last_rendered=initial if self.progress_ref is not None else None,
            resume_formatter=self.resume_formatter,
            context_line=self.context_line,
        )
        origin = RunOrigin(
            channel_id=self.incoming.channel_id,
            message_id=self.incoming.message_id,
            thread_id=self.incoming.thread_id,
            progress_ref=self.progress_ref,
            context_line=self.context_line,
        )
        delivered = False
        try:
            outcome, error = await self._run(prompt, edits, origin)
            delivered = await self._reply(outcome, error)
        finally:
            await _settle(origin, delivered)

    async def _open_progress(self) -> RenderedMessage:
        """Send the ``starting`` progress message (editing the placeholder if one was given)."""
        initial = render_progress_safely(
            self.cfg.presenter, self.snapshot(), elapsed_s=0.0, label="starting"
        )
        if self.progress_ref is not None:
            self.progress_ref = await send_result_message(
                self.cfg,
                channel_id=self.incoming.channel_id,
                reply_to=self.user_ref,
                progress_ref=None,
                message=initial,
                notify=False,
                edit_ref=self.progress_ref,
                thread_id=self.incoming.thread_id,
            )
        else:
            self.progress_ref = await send_quietly(
                self.cfg.transport,
                channel_id=self.incoming.channel_id,
                message=initial,
                options=SendOptions(
                    reply_to=self.user_ref, notify=False, thread_id=self.incoming.thread_id
                ),
            )
        if self.progress_ref is None:
            logger.warning("handle.progress_send_failed")
        return initial

    async def _run(
        self, prompt: str, edits: ProgressEdits, origin: RunOrigin
    ) -> tuple[ExecOutcome, BaseException | None]:
        """Run the runner with progress edits; the run is registered in ``running_tasks``
        (keyed by its progress message) and ``origin`` is current while it runs."""
        running_task = self.running_task
        registered_ref = self.progress_ref if self.running_tasks is not None else None
        if registered_ref is not None and self.running_tasks is not None:
            self.running_tasks[registered_ref] = running_task
        origin_token = current_run_origin.set(origin)
        outcome = ExecOutcome()
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(edits.run)
                try:
                    outcome = await run_runner_with_cancel(
                        self.runner,
                        prompt=prompt,
                        resume_token=self.resume_token,
                        edits=edits,
                        running_task=running_task,
                        on_thread_known=self.on_thread_known,
                    )
                    if outcome.completed is None and not outcome.cancelled:
                        raise RuntimeError("runner finished without a completed event")
                except Exception as exc:
                    error = exc
                    logger.error("handle.runner_failed", error=format_error(exc))
                finally:
                    if running_task.resume is None:
                        running_task.resume = outcome.resume
                    running_task.resume_ready.set()
                    edits.close()
                    tg.cancel_scope.cancel()
        finally:
            current_run_origin.reset(origin_token)
            running_task.done.set()
            if registered_ref is not None and self.running_tasks is not None:
                self.running_tasks.pop(registered_ref, None)
        return outcome, error

    async def _reply(self, outcome: ExecOutcome, error: BaseException | None) -> bool:
        """Send the terminal message; True when it reached the transport."""
        elapsed = self.clock() - self.started_at
        if outcome.resume is not None:
            bind_run_context(resume=outcome.resume.value)
        self.tracker.set_resume(outcome.resume)
        state = self.snapshot()
        presenter = self.cfg.presenter
        log_fields: dict[str, Any]
        if error is not None:
            rendered = render_final_safely(
                presenter, state, elapsed_s=elapsed, status="error", answer=format_error(error)
            )
            notify, edit_ref = False, self.progress_ref
            log_fields = {"status": "error"}
        elif outcome.cancelled and outcome.completed is None:
            rendered = render_progress_safely(
                presenter, state, elapsed_s=elapsed, label="`cancelled`"
            )
            notify, edit_ref = False, self.progress_ref
            log_fields = {"status": "cancelled"}
        else:
            completed = outcome.completed
            assert completed is not None
            status, answer = _final_answer(completed)
            rendered = render_final_safely(
                presenter, state, elapsed_s=elapsed, status=status, answer=answer
            )
            notify = self.cfg.final_notify
            edit_ref = None if self.cfg.final_notify else self.progress_ref
            log_fields = {
                "status": status,
                "ok": completed.ok,
                "answer_len": len(answer),
                "action_count": state.action_count,
            }
        sent = await send_result_message(
            self.cfg,
            channel_id=self.incoming.channel_id,
            reply_to=self.user_ref,
            progress_ref=self.progress_ref,
            message=rendered,
            notify=notify,
            edit_ref=edit_ref,
            thread_id=self.incoming.thread_id,
        )
        logger.info("handle.completed", elapsed=elapsed, **log_fields)
        return sent is not None


async def _settle(origin: RunOrigin, delivered: bool) -> None:
    with anyio.CancelScope(shield=True):
        for callback in origin.on_settled:
            try:
                result = callback(delivered)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                logger.warning("handle.settle_callback_failed", error=format_error(exc))


async def handle_message(
    cfg: ExecBridgeConfig,
    *,
    runner: Runner,
    incoming: IncomingMessage,
    resume_token: ResumeToken | None,
    context: RunContext | None = None,
    context_line: str | None = None,
    strip_resume_line: Callable[[str], bool] | None = None,
    running_tasks: RunningTasks | None = None,
    on_thread_known: OnThreadKnown | None = None,
    progress_ref: MessageRef | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``incoming`` on ``runner`` and render it into the chat (see the module docstring).

    ``progress_ref``: an existing placeholder (e.g. a ``queued`` message) to reuse as the
    progress message. ``strip_resume_line``: predicate for resume lines to drop from the prompt
    (default: the runner's own ``is_resume_line``).
    """
    started_at = clock()
    outer_log_context = structlog.contextvars.get_contextvars()
    bind_run_context(
        chat_id=incoming.channel_id,
        user_msg_id=incoming.message_id,
        engine=runner.engine,
        resume=resume_token.value if resume_token is not None else None,
        project=context.project if context is not None else None,
        branch=context.branch if context is not None else None,
    )
    try:
        run = BridgeRun(
            cfg=cfg,
            runner=runner,
            incoming=incoming,
            resume_token=resume_token,
            context=context,
            context_line=context_line,
            running_tasks=running_tasks,
            on_thread_known=on_thread_known,
            clock=clock,
            started_at=started_at,
            progress_ref=progress_ref,
        )
        await run.execute(strip_resume_line=strip_resume_line)
    finally:
        clear_context()
        if outer_log_context:
            bind_run_context(**outer_log_context)


__all__ = [
    "ExecBridgeConfig",
    "ExecOutcome",
    "IncomingMessage",
    "ProgressEdits",
    "RunOrigin",
    "RunningTask",
    "RunningTasks",
    "current_run_origin",
    "format_error",
    "handle_message",
    "render_final_safely",
    "render_progress_safely",
    "run_runner_with_cancel",
    "send_result_message",
    "send_runner_unavailable",
]
