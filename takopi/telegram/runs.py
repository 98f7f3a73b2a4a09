"""Starting runs: queueing on busy threads, runner selection, cwd, run options, and the
``handle_message`` call. :class:`RunLauncher` owns the thread scheduler and the table of
running tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.model import ResumeToken
from takopi.progress import ProgressTracker
from takopi.router import RunnerUnavailableError
from takopi.runner_bridge import ExecBridgeConfig, IncomingMessage, RunningTasks, handle_message
from takopi.runners.run_options import EngineRunOptions, apply_run_options
from takopi.scheduler import ThreadJob, ThreadScheduler
from takopi.transport import MessageRef, RenderedMessage, SendOptions
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

from .intake import Hold, hold_current, run_launched
from .preferences import Preferences
from .render import render_markdown
from .runspec import ResumeLineProxy, RunSpec, reasoning_ignored_note
from .scope import ChatScope
from .sessions import Sessions
from .types import int_or_none

log = get_logger(__name__)


class RunLauncher:
    """Runs resolved prompts (see module docstring)."""

    def __init__(
        self,
        *,
        runtime: Any,
        exec_cfg: ExecBridgeConfig,
        task_group: TaskGroup,
        sessions: Sessions,
        preferences: Preferences,
        show_resume_line: bool,
        scope_for: Callable[[int, int | None], ChatScope] = ChatScope,
    ) -> None:
        self.runtime = runtime
        self.exec_cfg = exec_cfg
        self.presenter = exec_cfg.presenter
        self.transport = exec_cfg.transport
        self.sessions = sessions
        self.preferences = preferences
        self.show_resume_line = show_resume_line
        self.scope_for = scope_for
        self.running_tasks: RunningTasks = {}
        self.scheduler = ThreadScheduler(task_group=task_group, run_job=self._run_job)  # type: ignore[arg-type]
        # Messages whose run waits in the scheduler's queue (plain data, no task holds them):
        # still open with the supervisor until that run ends or is cancelled (see .intake).
        self._queued_holds: dict[tuple[int, int], Hold] = {}

    # -- queueing -----------------------------------------------------------------------
    async def start(self, spec: RunSpec) -> None:
        """Run ``spec`` now, or — when it resumes a thread — queue it behind that thread."""
        run_launched()  # messages coalesced into this prompt are answered by its run
        if spec.resume_token is not None:
            await self.enqueue(spec)
            return
        await self.run_spec(spec)

    async def enqueue(self, spec: RunSpec) -> None:
        """Queue a resume run behind its thread. As in the reference, every queued run gets a
        silent ``queued`` placeholder with a cancel button (even when the thread is idle and
        the run starts at once); the run then edits it into its progress message."""
        assert spec.resume_token is not None
        token = spec.resume_token
        progress_ref = await self._send_queued_placeholder(spec)
        hold = hold_current()
        if hold is not None:
            self.release_queued(spec.chat_id, spec.user_msg_id)  # a re-queued message: once
            self._queued_holds[(spec.chat_id, spec.user_msg_id)] = hold
        log.info(
            "telegram.run.queued", chat_id=spec.chat_id, thread=f"{token.engine}:{token.value}"
        )
        await self.scheduler.enqueue(
            ThreadJob(
                chat_id=spec.chat_id,
                user_msg_id=spec.user_msg_id,
                text=spec.text,
                resume_token=token,
                context=spec.context,
                thread_id=spec.thread_id,
                session_key=spec.session_key,
                progress_ref=progress_ref,
            )
        )

    async def _send_queued_placeholder(self, spec: RunSpec) -> MessageRef | None:
        assert spec.resume_token is not None
        token = spec.resume_token
        tracker = ProgressTracker(token.engine)
        tracker.set_resume(token)
        state = tracker.snapshot(
            resume_formatter=self.resume_formatter(token, show=self.show_resume(spec)),
            context_line=self.context_line(spec.context),
        )
        placeholder = self.presenter.render_progress(state, elapsed_s=0.0, label="queued")
        return await self.transport.send(  # type: ignore[no-any-return]
            channel_id=spec.chat_id,
            message=placeholder,
            options=SendOptions(
                reply_to=MessageRef(
                    channel_id=spec.chat_id, message_id=spec.user_msg_id, thread_id=spec.thread_id
                ),
                notify=False,
                thread_id=spec.thread_id,
            ),
        )

    def release_queued(self, chat_id: Any, user_msg_id: Any) -> None:
        """The queued run of this message ran or was cancelled: its handling is over."""
        hold = self._queued_holds.pop((int(chat_id), int(user_msg_id)), None)
        if hold is not None:
            hold.release()

    async def _run_job(self, job: ThreadJob) -> None:
        try:
            await self._run_queued(job)
        finally:
            self.release_queued(job.chat_id, job.user_msg_id)

    async def _run_queued(self, job: ThreadJob) -> None:
        chat_id = int(job.chat_id)
        thread_id = int_or_none(job.thread_id)
        spec = RunSpec(
            chat_id=chat_id,
            user_msg_id=int(job.user_msg_id),
            text=job.text,
            thread_id=thread_id,
            reply_to=None,
            resume_token=job.resume_token,
            engine_override=None,
            context=job.context,
            session_key=job.session_key,
            scope=self.scope_for(chat_id, thread_id),
        )
        await self.run_spec(spec, progress_ref=job.progress_ref)

    # -- rendering helpers --------------------------------------------------------------
    def show_resume(self, spec: RunSpec) -> bool:
        # Hidden resume lines only make sense where takopi keeps the session itself.
        return self.show_resume_line or spec.session_key is None

    def resume_formatter(self, token: ResumeToken, *, show: bool) -> Callable[[ResumeToken], str]:
        def fmt(tok: ResumeToken) -> str:
            if not show:
                return ""
            try:
                entry = self.runtime.resolve_runner(resume_token=tok, engine_override=None)
                return str(entry.runner.format_resume(tok))
            except Exception:
                return f"`{tok.engine} resume {tok.value}`"

        return fmt

    def context_line(self, context: RunContext | None) -> str | None:
        try:
            return self.runtime.format_context_line(context)  # type: ignore[no-any-return]
        except Exception:
            return None

    # -- running ------------------------------------------------------------------------
    async def run_spec(
        self,
        spec: RunSpec,
        *,
        progress_ref: MessageRef | None = None,
        transport: Any = None,
    ) -> None:
        """Run one prompt through ``handle_message`` (errors become chat replies)."""
        exec_cfg = self.exec_cfg
        if transport is not None:
            exec_cfg = ExecBridgeConfig(
                transport=transport, presenter=self.presenter, final_notify=True
            )
        try:
            entry = self.runtime.resolve_runner(
                resume_token=spec.resume_token, engine_override=spec.engine_override
            )
        except RunnerUnavailableError as exc:
            # an engine that is not configured at all: a plain error reply, no header
            log.warning("telegram.run.unknown_engine", error=str(exc))
            await self._send_error_reply(exec_cfg, spec, str(exc), progress_ref=progress_ref)
            return
        if not entry.available:
            issue = entry.issue or f"engine {entry.engine!r} is unavailable"
            await self._send_unavailable(
                exec_cfg, spec, engine=entry.engine, issue=issue, progress_ref=progress_ref
            )
            return
        try:
            # may create a git worktree: keep it off the event loop
            cwd = await anyio.to_thread.run_sync(self.runtime.resolve_run_cwd, spec.context)
        except ConfigError as exc:
            log.warning("telegram.run.cwd_failed", error=str(exc))
            await self._send_error_reply(exec_cfg, spec, str(exc), progress_ref=progress_ref)
            return
        overrides = await self.preferences.run_overrides(spec.chat_scope, entry.engine)
        notes = []
        if overrides.ignored_reasoning:
            log.info("telegram.reasoning.unsupported", engine=entry.engine)
            notes.append(reasoning_ignored_note(entry.engine))
        runner = ResumeLineProxy(entry.runner, show=self.show_resume(spec), notes=notes)

        async def on_thread_known(token: ResumeToken, done: anyio.Event) -> None:
            await self.scheduler.note_thread_known(token, done)
            if spec.session_key is not None:
                await self.sessions.set(spec.session_key, token)

        options = (
            EngineRunOptions(model=overrides.model, reasoning=overrides.reasoning)
            if overrides.model or overrides.reasoning
            else None
        )
        base_token = set_run_base_dir(cwd)
        try:
            with apply_run_options(options):
                await handle_message(
                    exec_cfg,
                    runner=runner,  # type: ignore[arg-type]
                    incoming=IncomingMessage(
                        channel_id=spec.chat_id,
                        message_id=spec.user_msg_id,
                        text=spec.text,
                        reply_to=spec.reply_to,
                        thread_id=spec.thread_id,
                    ),
                    resume_token=spec.resume_token,
                    context=spec.context,
                    context_line=self.context_line(spec.context),
                    strip_resume_line=self.runtime.is_resume_line,
                    running_tasks=self.running_tasks if transport is None else None,
                    on_thread_known=on_thread_known,
                    progress_ref=progress_ref,
                )
        finally:
            reset_run_base_dir(base_token)

    # -- runs that cannot start -----------------------------------------------------------
    async def _send_unavailable(
        self,
        exec_cfg: ExecBridgeConfig,
        spec: RunSpec,
        *,
        engine: str,
        issue: str,
        progress_ref: MessageRef | None,
    ) -> None:
        """The engine exists but cannot run: a final-style ``error · <engine> · 0s`` message
        with ``error:`` and the issue, and the resume line when the run resumes a thread (so
        the session is not lost). No ctx line, as in the reference."""
        token = spec.resume_token
        tracker = ProgressTracker(engine)
        tracker.set_resume(token)
        state = tracker.snapshot(
            resume_formatter=(
                self.resume_formatter(token, show=self.show_resume(spec)) if token else None
            )
        )
        rendered = exec_cfg.presenter.render_final(
            state, elapsed_s=0.0, status="error", answer=f"error:\n{issue}"
        )
        await self._send_terminal(exec_cfg, spec, rendered, progress_ref=progress_ref)
        log.warning("telegram.run.unavailable", engine=engine, error=issue)

    async def _send_error_reply(
        self,
        exec_cfg: ExecBridgeConfig,
        spec: RunSpec,
        error: str,
        *,
        progress_ref: MessageRef | None,
    ) -> None:
        """``error:`` and the error as a Markdown reply (unknown engine, bad working dir)."""
        text, entities = render_markdown(f"error:\n{error}")
        rendered = RenderedMessage(text=text, extra={"entities": entities})
        await self._send_terminal(exec_cfg, spec, rendered, progress_ref=progress_ref)

    async def _send_terminal(
        self,
        exec_cfg: ExecBridgeConfig,
        spec: RunSpec,
        message: RenderedMessage,
        *,
        progress_ref: MessageRef | None,
    ) -> None:
        """Reply to the user's message, replacing the run's ``queued`` placeholder if any."""
        options = SendOptions(
            reply_to=MessageRef(
                channel_id=spec.chat_id, message_id=spec.user_msg_id, thread_id=spec.thread_id
            ),
            notify=True,
            replace=progress_ref,
            thread_id=spec.thread_id,
        )
        await exec_cfg.transport.send(channel_id=spec.chat_id, message=message, options=options)


__all__ = ["RunLauncher"]
