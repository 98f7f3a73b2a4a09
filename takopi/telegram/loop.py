"""The Telegram chat loop: the composition root of the transport.

``run_main_loop(cfg)`` builds a :class:`TelegramLoop` and runs it until cancelled. Per
update: de-duplicate; callbacks go to the :class:`Canceller`; messages pass the
:class:`ChatGate` (configured chats, ``allowed_user_ids``, the offline-backlog policy) and
then the :class:`MessageRouter`'s steps, in the reference order (see :mod:`.routing`).

The parts, each an object with one job: :class:`Replier` (answers), :class:`Preferences`
(what a scope's settings resolve to), :class:`Sessions` (stored sessions),
:class:`RunLauncher` (runs, queueing, running tasks), :class:`PromptRunner` (prompts and the
forward coalescer), :class:`Canceller`, :class:`PluginCommands`, :class:`BuiltinCommands`,
:class:`TriggerGate`, :class:`CommandMenu` and :class:`MediaHandlers` (``/file``, uploads,
albums, voice notes).
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

from takopi.logging import get_logger
from takopi.transport import RenderedMessage, SendOptions

from .background import Background
from .bridge import TelegramBridgeConfig
from .builtins import BUILTIN_COMMANDS, BuiltinCommands
from .cancel import Canceller
from .chat_prefs import STATE_FILENAME as CHAT_PREFS_FILE
from .chat_prefs import ChatPrefsStore
from .chat_sessions import STATE_FILENAME as CHAT_SESSIONS_FILE
from .chat_sessions import ChatSessionStore
from .client import TelegramClient
from .context_cmds import ContextCommands
from .deliveries import deliver_pending
from .dispatch import PluginCommands
from .executor import CaptureTransport, TelegramCommandExecutor
from .gate import BACKLOG_NOTICE, ChatGate
from .intake import ANSWERED, Hold, HoldingTaskGroup, IntakeReporter, release_held
from .intake import CURRENT as INTAKE
from .media import build_media_handlers
from .media_steps import DocumentStep, FileStep, MediaGroupStep, VoiceStep
from .menu import CommandMenu
from .parsing import UpdateDeduper
from .permissions import check_admin, refusal
from .polling import ALLOWED_UPDATES, drain_backlog, poll_updates
from .preferences import Preferences
from .prompts import PromptRunner
from .render import render_markdown
from .replies import Replier
from .routing import MessageRouter, Route
from .runs import RunLauncher
from .scope import ChatScope
from .sessions import Sessions
from .steps import (
    BuiltinHandler,
    BuiltinStep,
    CancelStep,
    ContextStep,
    ForwardStep,
    NewStep,
    PluginStep,
    PromptStep,
    TriggerStep,
)
from .topic_state import STATE_FILENAME as TOPICS_FILE
from .topic_state import TopicStateStore
from .topics import TopicScope
from .trigger import TriggerGate
from .types import TelegramCallbackQuery, TelegramIncomingMessage, TelegramIncomingUpdate

Poller = Callable[[TelegramBridgeConfig], AsyncIterator[TelegramIncomingUpdate]]

log = get_logger(__name__)

CONFIRM_AT_STOP_S = 3.0
"""How long a stopping loop tries to confirm the updates it took (see ``confirm_taken``)."""
DELIVERY_POLL_S = 3.0
"""How often journaled outcomes are collected after startup (runs that lost a previous
transport incarnation can finish after this one started)."""


class TelegramLoop:
    """One running chat loop (see module docstring)."""

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
        self.runtime = runtime = cfg.runtime
        self.bot = cfg.bot
        self.transport = cfg.exec_cfg.transport
        self.presenter = cfg.exec_cfg.presenter
        # Tasks started while a message is handled hold its intake (see .intake).
        self.task_group = task_group = HoldingTaskGroup(task_group)  # type: ignore[assignment]
        self.background = Background(task_group)
        self.intake = IntakeReporter(cfg.runtime, self.background.spawn)
        self.deduper = UpdateDeduper()
        self.gate = ChatGate(cfg, started_at=started_at if started_at is not None else time.time())
        self.replier = Replier(self.transport)
        self.topic_scope = TopicScope(
            enabled=cfg.topics.enabled,
            scope=cfg.topics.scope,
            main_chat_id=cfg.chat_id,
            runtime=runtime,
        )
        state_dir = cfg.config_path.parent if cfg.config_path is not None else None
        chat_prefs = ChatPrefsStore(state_dir / CHAT_PREFS_FILE) if state_dir else None
        topics = (
            TopicStateStore(state_dir / TOPICS_FILE) if state_dir and cfg.topics.enabled else None
        )
        self.preferences = Preferences(runtime, chat_prefs, topics)
        self.sessions = Sessions(
            ChatSessionStore(state_dir / CHAT_SESSIONS_FILE) if state_dir else None,
            session_mode=cfg.session_mode,
            topic_store=topics,
        )
        self.context_cmds = (
            ContextCommands(
                runtime=runtime,
                bot=self.bot,
                transport=self.transport,
                chat_prefs=chat_prefs,
                topics=topics,
                topic_scope=self.topic_scope,
                preferences=self.preferences,
                replier=self.replier,
            )
            if chat_prefs is not None
            else None
        )
        self.runs = RunLauncher(
            runtime=runtime,
            exec_cfg=cfg.exec_cfg,
            task_group=task_group,
            sessions=self.sessions,
            preferences=self.preferences,
            show_resume_line=cfg.show_resume_line,
            scope_for=self.scope_for,
        )
        self.prompts = PromptRunner(
            runtime=runtime,
            runs=self.runs,
            preferences=self.preferences,
            sessions=self.sessions,
            replier=self.replier,
            task_group=task_group,
            scope_of=self.scope_of,
            forward_coalesce_s=cfg.forward_coalesce_s,
            bot_username=cfg.bot_username,
            before_run=self.context_cmds.before_run if self.context_cmds is not None else None,
        )
        self.canceller = Canceller(
            runs=self.runs, replier=self.replier, background=self.background, bot=self.bot
        )
        self.plugins = PluginCommands(
            runtime=runtime, replier=self.replier, executor_for=self.executor_for
        )
        self.builtins = (
            BuiltinCommands(
                runtime=runtime,
                chat_prefs=chat_prefs,
                topics=topics,
                preferences=self.preferences,
                reply=self.replier.reply,
                check_admin=partial(check_admin, self.bot),
                refusal=refusal,
            )
            if chat_prefs is not None
            else None
        )
        self.trigger = TriggerGate(
            runtime=runtime,
            preferences=self.preferences,
            plugins=self.plugins,
            bot_username=cfg.bot_username,
        )
        self.menu = CommandMenu(
            runtime=runtime, bot=self.bot, plugins=self.plugins, builtins=self.menu_builtins()
        )
        self.media = build_media_handlers(
            cfg,
            reply=self.replier.reply,
            ambient_context=self.prompts.ambient_context,
            triggered=self.triggered,
            strip_mention=self.prompts.strip_bot_mention,
        )
        self.router = MessageRouter(self.default_steps())

    # -- composition ----------------------------------------------------------------------
    def default_steps(self) -> list[Any]:
        """The routing steps, in the reference order (see :mod:`.routing`)."""
        bg = self.background
        return [
            ForwardStep(self.prompts),
            MediaGroupStep(
                self.media,
                task_group=self.task_group,  # type: ignore[arg-type]
                delay_s=self.cfg.media_group_debounce_s,
                scope_of=self.scope_of,
                route_after=self.route_after,
            ),
            ContextStep(self.scope_of),
            CancelStep(self.canceller),
            NewStep(self.sessions, self.prompts, self.replier, bg),
            FileStep(self.media, bg),
            BuiltinStep(self.builtin_handlers(), bg, topic_chat=self.topic_scope.in_scope),
            TriggerStep(self.trigger),
            VoiceStep(self.media, bg, self.route_after),
            DocumentStep(self.media, bg, self.route_after),
            PluginStep(self.plugins, bg),
            PromptStep(self.prompts, bg),
        ]

    async def route_after(self, name: str, route: Route) -> str | None:
        """Hand ``route`` on to the steps after ``name`` (media steps finish in the
        background: a transcript or a captioned upload continues as a prompt)."""
        return await self.router.route_after(name, route)

    async def triggered(self, msg: TelegramIncomingMessage, command: str | None) -> bool:
        """The trigger-mode check of ``msg``'s scope (albums check each of their files)."""
        return await self.trigger.triggered(msg, self.scope_of(msg), command)

    def builtin_handlers(self) -> dict[str, BuiltinHandler]:
        """``/agent`` ``/model`` ``/reasoning`` ``/trigger`` ``/ctx`` (+ ``/topic``)."""
        handlers: dict[str, BuiltinHandler] = {}
        builtins = self.builtins
        if builtins is not None:
            for name in BUILTIN_COMMANDS:
                handlers[name] = partial(_call_builtin, builtins.handle, name)
        if self.context_cmds is not None:
            handlers["ctx"] = self.context_cmds.handle_ctx
            if self.cfg.topics.enabled:
                handlers["topic"] = self.context_cmds.handle_topic
        return handlers

    def menu_builtins(self) -> list[tuple[str, str]]:
        """The reference's order; ``/new`` is always listed."""
        builtins: list[tuple[str, str]] = [("new", "start a new thread")]
        if self.builtins is not None:
            builtins += [
                ("ctx", "show or update context"),
                ("agent", "set default engine"),
                ("model", "set model override"),
                ("reasoning", "set reasoning override"),
                ("trigger", "set trigger mode"),
            ]
        if self.cfg.topics.enabled and self.context_cmds is not None:
            builtins.append(("topic", "create or bind a topic"))
        if self.cfg.files.enabled:
            builtins.append(("file", "upload or fetch files"))
        builtins.append(("cancel", "cancel run"))
        return builtins

    def scope_for(self, chat_id: int, thread_id: int | None) -> ChatScope:
        """The scope of a chat/thread pair (a managed topic, or the chat)."""
        return self.topic_scope.scope_for(chat_id, thread_id)

    def scope_of(self, msg: TelegramIncomingMessage) -> ChatScope:
        return self.scope_for(msg.chat_id, msg.thread_id)

    def executor_for(self, msg: TelegramIncomingMessage) -> TelegramCommandExecutor:
        """``ctx.executor`` of a command plugin invoked by ``msg``."""
        return TelegramCommandExecutor(
            runs=self.runs,
            preferences=self.preferences,
            sessions=self.sessions,
            msg=msg,
            scope=self.scope_of(msg),
        )

    # -- updates --------------------------------------------------------------------------
    async def handle_update(self, update: TelegramIncomingUpdate) -> None:
        """Route one parsed update; never raises (errors are logged)."""
        try:
            if not self.deduper.is_new(update):
                log.debug("update.ignored", reason="duplicate", update_id=update.update_id)
                return
            if isinstance(update, TelegramCallbackQuery):
                if self.gate.accepts_callback(update):
                    await self.canceller.handle_button(update)
                return
            await self.handle_message(update)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("update.failed", error=str(exc))

    async def handle_message(self, msg: TelegramIncomingMessage) -> None:
        verdict = self.gate.check_message(msg)
        if verdict == "ignore":
            return
        # Reported before the next poll confirms the update (see .intake), and before any
        # reply: a message already answered (Telegram offered it again, its confirmation was
        # lost) gets nothing more, neither the backlog notice nor a run.
        hold = await self.intake.taken(msg)
        if hold == ANSWERED:
            log.info(
                "update.ignored",
                reason="already_answered",
                chat_id=msg.chat_id,
                message_id=msg.message_id,
                update_id=msg.update_id,
            )
            return
        if verdict == "notify":
            # Reported like any handled message: one a killed predecessor had taken (its
            # restart moved our start time past it) then gets the notice, not also an
            # "interrupted" reply from the supervisor.
            self.background.spawn(partial(self._notify_backlog, msg, hold))
            return
        log.info("handle.incoming_update", chat_id=msg.chat_id, message_id=msg.message_id)
        token = INTAKE.set(hold)
        error: BaseException | None = None
        try:
            await self.router.route(msg)
        except BaseException as exc:
            error = exc
            raise
        finally:
            INTAKE.reset(token)
            release_held(hold, error)

    async def _notify_backlog(self, msg: TelegramIncomingMessage, hold: Hold | None) -> None:
        error: BaseException | None = None
        try:
            await self.replier.reply(msg, BACKLOG_NOTICE, notify=False)
        except BaseException as exc:
            error = exc
            raise
        finally:
            release_held(hold, error)

    # -- startup --------------------------------------------------------------------------
    async def send_startup_message(self) -> None:
        if not self.cfg.startup_msg:
            return
        text, entities = render_markdown(self.cfg.startup_msg)
        await self.transport.send(
            channel_id=self.cfg.chat_id,
            message=RenderedMessage(text=text, extra={"entities": entities}),
            options=SendOptions(notify=False),
        )

    async def deliver_pending(self) -> None:
        """Journaled outcomes, sent like live finals (see :mod:`.deliveries`)."""
        await deliver_pending(
            self.runtime,
            self.transport,
            self.presenter,
            edit_progress=not self.cfg.exec_cfg.final_notify,
        )

    async def collect_deliveries(self, interval: float = DELIVERY_POLL_S) -> None:
        """Keep delivering journaled outcomes: a run whose transport died can finish after
        this transport started (the supervisor journals it; nobody else will send it)."""
        while True:
            await anyio.sleep(interval)
            await self.deliver_pending()

    async def run(self) -> None:
        """Startup sequence, then poll forever. Topic validation failures are fatal
        (:class:`~takopi.config.ConfigError`), as in the reference."""
        await self.topic_scope.validate(self.bot)
        await self.sessions.sync_cwd(os.getcwd())
        offset: int | None = None
        if self.cfg.offline_backlog == "drop":
            offset = await drain_backlog(self.bot)
        await self.deliver_pending()
        await self.send_startup_message()
        self.background.spawn(self.menu.sync)
        self.background.spawn(self.menu.follow_runtime)
        if getattr(self.runtime, "pending_deliveries", None) is not None:
            self.background.spawn(self.collect_deliveries)
        updates = (
            self.poller(self.cfg)
            if self.poller is not None
            else poll_updates(self.cfg, offset=offset)
        )
        try:
            async for update in updates:
                await self.handle_update(update)
        except anyio.get_cancelled_exc_class():
            await self.confirm_taken()
            raise

    async def confirm_taken(self) -> None:
        """At a clean stop, confirm to Telegram every update this loop took (the supervisor
        answers those it never ran ``interrupted``; re-offered to the next start they are
        only recognised and ignored, see :mod:`.intake`). Only under a supervisor that
        tracks intake (else they are left to the next start's offline-backlog policy);
        bounded, best effort."""
        last = self.intake.last_seq
        if last is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CONFIRM_AT_STOP_S):
            try:
                result = await self.bot.get_updates(
                    last + 1, timeout_s=0, allowed_updates=ALLOWED_UPDATES
                )
            except Exception as exc:  # a 429 or a network error must not replace the stop
                log.warning("telegram.stop.confirm_failed", offset=last + 1, error=str(exc))
                return
            if result is None:
                log.warning("telegram.stop.confirm_failed", offset=last + 1, error="no answer")
            else:
                log.info("telegram.stop.confirmed", offset=last + 1)


async def _call_builtin(
    handle: Callable[..., Awaitable[Any]],
    name: str,
    msg: TelegramIncomingMessage,
    scope: ChatScope,
    args_text: str,
) -> None:
    await handle(msg, scope, name, args_text)


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
