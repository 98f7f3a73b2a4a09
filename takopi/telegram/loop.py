"""The Telegram chat loop: long polling, routing, runs, cancellation, sessions, deliveries.

``run_main_loop(cfg)`` runs until cancelled. Per update: parse (malformed ⇒ logged and
skipped), de-duplicate, accept only configured chats (and, if set, ``allowed_user_ids``
senders), apply the offline-backlog policy, then route (reference order): forwards to the
coalescer, album files to the media-group buffer, ``/cancel``, ``/new``, built-in commands
(``/file`` included), the trigger-mode check, voice notes, documents (auto-put), plugin
commands, everything else as a prompt (after ``forward_coalesce_s``; replies to a running
progress message are queued on that thread).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.context import RunContext
from takopi.directives import DirectiveError
from takopi.logging import get_logger
from takopi.progress import ProgressTracker
from takopi.runner_bridge import RunningTasks
from takopi.scheduler import ThreadJob, ThreadScheduler
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .bridge import CANCEL_CALLBACK_DATA, TelegramBridgeConfig
from .builtins import BUILTIN_COMMANDS, BuiltinCommands
from .chat_prefs import ChatPrefsStore
from .chat_sessions import ChatSessionStore, chat_session_key
from .client import TelegramClient
from .coalesce import ForwardCoalescer, format_forwarded_prompt
from .commands import parse_command
from .deliveries import deliver_pending
from .dispatch import PluginCommandsMixin
from .executor import CaptureTransport, TelegramCommandExecutor
from .media import build_media_handlers
from .parsing import UpdateDeduper
from .polling import ALLOWED_UPDATES, drain_backlog, poll_updates
from .render import render_markdown
from .runs import RunsMixin
from .runspec import RunSpec
from .types import TelegramCallbackQuery, TelegramIncomingMessage, TelegramIncomingUpdate

Poller = Callable[[TelegramBridgeConfig], AsyncIterator[TelegramIncomingUpdate]]

log = get_logger(__name__)

CANCEL_NO_REPLY = "reply to the progress message to cancel."
CANCEL_NOTHING = "nothing is currently running for that message."
CANCEL_RUNNING = "cancelling..."
CANCEL_DROPPED = "dropped from queue."
RESUME_NOT_READY = "resume token not ready yet; try replying to the final message."
DELIVERY_POLL_S = 3.0
"""How often journaled outcomes are collected after startup (runs that lost a previous
transport incarnation can finish after this one started)."""
BACKLOG_NOTICE = (
    "takopi was offline when this message arrived, so it was not run. send it again to run it."
)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- the loop ------------------------------------------------------------------------------


class TelegramLoop(RunsMixin, PluginCommandsMixin):
    """State of one running chat loop (see module docstring)."""

    def __init__(
        self,
        cfg: TelegramBridgeConfig,
        task_group: TaskGroup,
        *,
        started_at: float | None = None,
        poller: Poller | None = None,
    ) -> None:
        self.cfg = cfg
        self.poller = poller
        self.runtime = cfg.runtime
        self.bot = cfg.bot
        self.exec_cfg = cfg.exec_cfg
        self.transport = cfg.exec_cfg.transport
        self.presenter = cfg.exec_cfg.presenter
        self.tg = task_group
        self.started_at = started_at if started_at is not None else time.time()
        self.running_tasks: RunningTasks = {}
        self.scheduler = ThreadScheduler(task_group=task_group, run_job=self._run_job)  # type: ignore[arg-type]
        self.deduper = UpdateDeduper()
        self.coalescer = ForwardCoalescer(
            delay_s=cfg.forward_coalesce_s, task_group=task_group, on_flush=self._flush_prompt
        )
        self.sessions: ChatSessionStore | None = None
        self.builtins: BuiltinCommands | None = None
        if cfg.config_path is not None:
            self.sessions = ChatSessionStore(
                cfg.config_path.with_name("telegram_chat_sessions_state.json")
            )
            self.builtins = BuiltinCommands(
                runtime=self.runtime,
                prefs=ChatPrefsStore(cfg.config_path.with_name("telegram_chat_prefs_state.json")),
                reply=self.reply,
                is_admin=self.is_admin,
            )
        self._plugin_ids: set[str] | None = None
        self.media = build_media_handlers(
            cfg,
            task_group=task_group,
            reply=self.reply,
            ambient_context=self.ambient_context,
            triggered=self.triggered,
            submit_prompt=self.submit_prompt,
            strip_mention=self.strip_bot_mention,
        )

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background; its errors are logged, never fatal."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                log.exception(
                    "telegram.task_failed", task=getattr(fn, "__name__", "?"), error=str(exc)
                )

        self.tg.start_soon(guarded)

    # -- acceptance ---------------------------------------------------------------------
    def chat_accepted(self, chat_id: int | None) -> bool:
        if chat_id is None:
            return False
        if self.cfg.chat_ids is not None and chat_id in self.cfg.chat_ids:
            return True
        if chat_id == self.cfg.chat_id or chat_id in self.cfg.allowed_user_ids:
            return True
        try:
            return self.runtime.default_context_for_chat(chat_id) is not None
        except Exception as exc:
            log.warning("telegram.chat_check_failed", error=str(exc))
            return False

    def sender_allowed(self, sender_id: int | None) -> bool:
        allowed = self.cfg.allowed_user_ids
        return not allowed or (sender_id is not None and sender_id in allowed)

    async def default_engine_for(self, chat_id: int, context: RunContext | None) -> str:
        """The engine a new run in ``chat_id`` uses without a directive."""
        if self.builtins is not None:
            choice = await self.builtins.engine_choice(chat_id, directive=None, context=context)
            return choice.engine
        return self.runtime.resolve_engine(engine_override=None, context=context)  # type: ignore[no-any-return]

    async def ambient_context(self, chat_id: int) -> RunContext | None:
        """The chat's ``/ctx`` binding, else the project bound to the chat."""
        if self.builtins is not None:
            context, _source = await self.builtins.ambient_context(chat_id)
            return context
        return self.runtime.default_context_for_chat(chat_id)  # type: ignore[no-any-return]

    async def is_admin(self, msg: TelegramIncomingMessage) -> bool:
        """Private chats, or group creators/administrators (``getChatMember``)."""
        if msg.is_private:
            return True
        if msg.sender_id is None:
            return False
        member = await self.bot.get_chat_member(msg.chat_id, msg.sender_id)
        return isinstance(member, dict) and member.get("status") in {"creator", "administrator"}

    async def triggered(self, msg: TelegramIncomingMessage, command: str | None) -> bool:
        """In ``mentions`` mode (groups), only mentions, replies to the bot and commands run."""
        if self.builtins is None or msg.is_private:
            return True
        if await self.builtins.trigger_mode(msg.chat_id) != "mentions":
            return True
        username = (self.cfg.bot_username or "").lower()
        if username and f"@{username}" in msg.text.lower():
            return True
        if msg.reply_to_is_bot or (username and (msg.reply_to_username or "").lower() == username):
            return True
        if command is not None:
            return (
                command in set(self.runtime.engine_ids)
                or bool(self.runtime.normalize_project_key(command))
                or await self.is_plugin_command(command)
            )
        return False

    # -- entry points -------------------------------------------------------------------
    async def handle_update(self, update: TelegramIncomingUpdate) -> None:
        """Route one parsed update; never raises (errors are logged)."""
        try:
            if not self.deduper.is_new(update):
                log.debug("update.ignored", reason="duplicate", update_id=update.update_id)
                return
            if isinstance(update, TelegramCallbackQuery):
                await self.handle_callback(update)
            else:
                await self.handle_message(update)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("update.failed", error=str(exc))

    async def handle_callback(self, query: TelegramCallbackQuery) -> None:
        if not self.chat_accepted(query.chat_id):
            log.info("update.ignored", reason="chat_not_allowed", chat_id=query.chat_id)
            return
        if not self.sender_allowed(query.sender_id):
            log.info("update.ignored", reason="sender_not_allowed", sender_id=query.sender_id)
            return
        if query.data != CANCEL_CALLBACK_DATA or query.chat_id is None or query.message_id is None:
            await self.bot.answer_callback_query(query.callback_query_id)
            return
        answer = self.cancel(query.chat_id, query.message_id)
        await self.bot.answer_callback_query(query.callback_query_id, text=answer)

    async def handle_message(self, msg: TelegramIncomingMessage) -> None:
        if not self.chat_accepted(msg.chat_id):
            log.info("update.ignored", reason="chat_not_allowed", chat_id=msg.chat_id)
            return
        if msg.sender_is_bot:
            return
        if not self.sender_allowed(msg.sender_id):
            log.info("update.ignored", reason="sender_not_allowed", sender_id=msg.sender_id)
            return
        if msg.date is not None and msg.date < int(self.started_at):
            policy = self.cfg.offline_backlog
            log.info(
                "update.backlog", policy=policy, chat_id=msg.chat_id, message_id=msg.message_id
            )
            if policy == "drop":
                return
            if policy != "run":
                self.spawn(partial(self.reply, msg, BACKLOG_NOTICE, notify=False))
                return
        log.info("handle.incoming_update", chat_id=msg.chat_id, message_id=msg.message_id)

        if msg.is_forward and not msg.has_document and not msg.has_voice and not msg.media_group_id:
            if not self.coalescer.attach_forward(msg):
                log.debug("update.ignored", reason="forward_without_prompt")
            return
        if self.media.buffer_album(msg):
            return

        command = parse_command(msg.text)
        if command is not None:
            if command.name == "cancel":
                self.handle_cancel_command(msg)
                return
            if command.name == "new" and self.cfg.session_mode == "chat":
                self.spawn(self.handle_new, msg)
                return
            if command.name == "file":
                self.spawn(self.media.file_command, msg, command.args_text)
                return
            if command.name in BUILTIN_COMMANDS and self.builtins is not None:
                self.spawn(self.builtins.handle, msg, command.name, command.args_text)
                return

        if not await self.triggered(msg, command.name if command is not None else None):
            log.debug("update.ignored", reason="not_triggered", chat_id=msg.chat_id)
            return
        if msg.has_voice:
            self.spawn(self.media.voice_note, msg)
            return
        if msg.has_document:
            self.spawn(self.media.document, msg)
            return
        if command is not None and await self.is_plugin_command(command.name):
            self.spawn(self.dispatch_command, msg, command.name, command.args_text)
            return
        self.submit_prompt(msg)

    def submit_prompt(self, msg: TelegramIncomingMessage) -> None:
        """Run ``msg`` as a prompt: queued on the thread when it replies to a running progress
        message, else through the forward coalescer."""
        if msg.reply_to_message_id is not None:
            ref = MessageRef(channel_id=msg.chat_id, message_id=msg.reply_to_message_id)
            if ref in self.running_tasks:
                self.spawn(self.follow_up_running, msg, ref)
                return
        self.coalescer.submit(msg)

    # -- replies ------------------------------------------------------------------------
    async def reply(
        self, msg: TelegramIncomingMessage, markdown: str, *, notify: bool = True
    ) -> MessageRef | None:
        text, entities = render_markdown(markdown)
        return await self.transport.send(
            channel_id=msg.chat_id,
            message=RenderedMessage(text=text, extra={"entities": entities}),
            options=SendOptions(
                reply_to=MessageRef(
                    channel_id=msg.chat_id, message_id=msg.message_id, thread_id=msg.thread_id
                ),
                notify=notify,
                thread_id=msg.thread_id,
            ),
        )

    async def send_error(self, msg: TelegramIncomingMessage, error: str) -> None:
        await self.reply(msg, f"error:\n{error}")

    # -- cancel -------------------------------------------------------------------------
    def cancel(self, chat_id: int, progress_message_id: int) -> str:
        """Cancel the run or queued job behind a progress message; returns the answer text."""
        ref = MessageRef(channel_id=chat_id, message_id=progress_message_id)
        task = self.running_tasks.get(ref)
        if task is not None:
            task.cancel_requested.set()
            log.info("telegram.cancel.requested", chat_id=chat_id, message_id=progress_message_id)
            return CANCEL_RUNNING
        job = self.scheduler.cancel_queued(chat_id, progress_message_id)
        if job is not None:
            self.spawn(self._mark_job_cancelled, job)
            return CANCEL_DROPPED
        return CANCEL_NOTHING

    async def _mark_job_cancelled(self, job: ThreadJob) -> None:
        if job.progress_ref is None:
            return
        tracker = ProgressTracker(job.resume_token.engine)
        tracker.set_resume(job.resume_token)
        formatter = self._resume_formatter(job.resume_token, show=True)
        state = tracker.snapshot(
            resume_formatter=formatter,
            context_line=self._context_line(job.context),
        )
        rendered = self.presenter.render_progress(state, elapsed_s=0.0, label="`cancelled`")
        await self.transport.edit(ref=job.progress_ref, message=rendered, wait=True)

    def handle_cancel_command(self, msg: TelegramIncomingMessage) -> None:
        if msg.reply_to_message_id is None:
            self.spawn(self.reply, msg, CANCEL_NO_REPLY)
            return
        answer = self.cancel(msg.chat_id, msg.reply_to_message_id)
        if answer == CANCEL_NOTHING:
            self.spawn(self.reply, msg, CANCEL_NOTHING)

    # -- /new ---------------------------------------------------------------------------
    def session_key(self, msg: TelegramIncomingMessage) -> str | None:
        if self.cfg.session_mode != "chat" or self.sessions is None:
            return None
        return chat_session_key(msg.chat_id, msg.sender_id, is_private=msg.is_private)

    async def handle_new(self, msg: TelegramIncomingMessage) -> None:
        self.coalescer.cancel(msg.chat_id, msg.thread_id, msg.sender_id)
        key = self.session_key(msg)
        if key is not None and self.sessions is not None:
            await self.sessions.clear(key)
        text = (
            "cleared stored sessions for this chat."
            if msg.is_private
            else "cleared stored sessions for you in this chat."
        )
        await self.reply(msg, text)

    # -- plugin commands ----------------------------------------------------------------
    # -- prompts ------------------------------------------------------------------------
    async def _flush_prompt(
        self, prompt: TelegramIncomingMessage, forwards: list[TelegramIncomingMessage]
    ) -> None:
        text = format_forwarded_prompt(prompt, forwards)
        try:
            await self.run_prompt(prompt, text)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.prompt.failed", error=str(exc))
            await self.send_error(prompt, str(exc) or type(exc).__name__)

    def strip_bot_mention(self, text: str) -> str:
        """Drop a leading ``@<bot>`` mention (it would otherwise read as an ``@branch``)."""
        username = self.cfg.bot_username
        if not username:
            return text
        stripped = text.lstrip()
        mention = f"@{username}"
        if stripped[: len(mention)].lower() == mention.lower() and (
            len(stripped) == len(mention) or stripped[len(mention)].isspace()
        ):
            return stripped[len(mention) :].lstrip(" \t")
        return text

    async def run_prompt(self, msg: TelegramIncomingMessage, text: str) -> None:
        """Resolve directives/context/resume for a prompt and run (or queue) it."""
        text = self.strip_bot_mention(text)
        try:
            resolved = self.runtime.resolve_message(
                text=text,
                reply_text=msg.reply_to_text,
                ambient_context=await self.ambient_context(msg.chat_id),
                chat_id=msg.chat_id,
            )
        except DirectiveError as exc:
            await self.send_error(msg, str(exc))
            return
        engine_override = resolved.engine_override
        if self.builtins is not None:
            choice = await self.builtins.engine_choice(
                msg.chat_id, directive=resolved.directive_engine, context=resolved.context
            )
            engine_override = choice.engine
        session_key = self.session_key(msg)
        resume = resolved.resume_token
        if resume is None and session_key is not None and self.sessions is not None:
            engine = self.runtime.resolve_engine(
                engine_override=engine_override, context=resolved.context
            )
            resume = await self.sessions.get(session_key, engine)
        spec = RunSpec(
            chat_id=msg.chat_id,
            user_msg_id=msg.message_id,
            text=resolved.prompt,
            thread_id=msg.thread_id,
            reply_to=(
                MessageRef(channel_id=msg.chat_id, message_id=msg.reply_to_message_id)
                if msg.reply_to_message_id is not None
                else None
            ),
            resume_token=resume,
            engine_override=engine_override,
            context=resolved.context,
            session_key=session_key,
        )
        if resume is not None:
            # resume runs go through the per-thread FIFO; a placeholder only when they wait
            await self.enqueue(spec, placeholder=self.scheduler.is_busy(resume))
            return
        await self.run_spec(spec)

    async def follow_up_running(self, msg: TelegramIncomingMessage, ref: MessageRef) -> None:
        """A reply to a running progress message: wait for its thread, then queue on it."""
        task = self.running_tasks.get(ref)
        if task is None:
            self.coalescer.submit(msg)
            return
        if task.resume is None:
            with anyio.move_on_after(60):
                await task.resume_ready.wait()
        token = task.resume
        if token is None:
            await self.reply(msg, RESUME_NOT_READY)
            return
        try:
            resolved = self.runtime.resolve_message(
                text=msg.text,
                reply_text=None,
                ambient_context=task.context or await self.ambient_context(msg.chat_id),
                chat_id=msg.chat_id,
            )
        except DirectiveError as exc:
            await self.send_error(msg, str(exc))
            return
        spec = RunSpec(
            chat_id=msg.chat_id,
            user_msg_id=msg.message_id,
            text=resolved.prompt,
            thread_id=msg.thread_id,
            reply_to=ref,
            resume_token=token,
            engine_override=None,
            context=task.context,
            session_key=self.session_key(msg),
        )
        await self.enqueue(spec)

    async def send_startup_message(self) -> None:
        if not self.cfg.startup_msg:
            return
        text, entities = render_markdown(self.cfg.startup_msg)
        await self.transport.send(
            channel_id=self.cfg.chat_id,
            message=RenderedMessage(text=text, extra={"entities": entities}),
            options=SendOptions(notify=False),
        )

    async def collect_deliveries(self, interval: float = DELIVERY_POLL_S) -> None:
        """Keep delivering journaled outcomes: a run whose transport died can finish after
        this transport started (the supervisor journals it; nobody else will send it)."""
        while True:
            await anyio.sleep(interval)
            await deliver_pending(self.runtime, self.transport, self.presenter)

    async def run(self) -> None:
        """Startup sequence, then poll forever."""
        if self.sessions is not None and self.cfg.session_mode == "chat":
            await self.sessions.sync_cwd(os.getcwd())
        offset: int | None = None
        if self.cfg.offline_backlog == "drop":
            offset = await drain_backlog(self.bot)
        await deliver_pending(self.runtime, self.transport, self.presenter)
        await self.send_startup_message()
        self.spawn(self.sync_commands)
        if getattr(self.runtime, "pending_deliveries", None) is not None:
            self.spawn(self.collect_deliveries)
        updates = (
            self.poller(self.cfg)
            if self.poller is not None
            else poll_updates(self.cfg, offset=offset)
        )
        async for update in updates:
            await self.handle_update(update)


async def run_main_loop(
    cfg: TelegramBridgeConfig,
    *,
    poller: Poller | None = None,
    **_ignored: Any,
) -> None:
    """Run the chat loop of ``cfg`` until cancelled.

    ``poller(cfg)`` replaces the default update source (plugins wrap :func:`poll_updates` to
    filter updates). Reference keywords this build does not use (``watch_config``,
    ``default_engine_override``, ``transport_id``, ``transport_config``) are accepted and
    ignored. A :class:`TelegramClient` whose outbox is not running yet gets it started here.
    """
    async with AsyncExitStack() as stack:
        bot = cfg.bot
        if isinstance(bot, TelegramClient) and not bot.outbox.running:
            await stack.enter_async_context(bot)
        tg = await stack.enter_async_context(anyio.create_task_group())
        loop = TelegramLoop(cfg, tg, poller=poller)
        await loop.run()


__all__ = [
    "ALLOWED_UPDATES",
    "BACKLOG_NOTICE",
    "CaptureTransport",
    "TelegramCommandExecutor",
    "TelegramLoop",
    "drain_backlog",
    "poll_updates",
    "run_main_loop",
]
