"""Prompts: the forward coalescer in front of them, then directive/context/engine/resume
resolution into a :class:`RunSpec` handed to the :class:`RunLauncher`. Replies to a running
progress message wait for that run's thread and queue on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.context import RunContext
from takopi.directives import DirectiveError
from takopi.logging import get_logger
from takopi.transport import MessageRef

from .coalesce import ForwardCoalescer, format_forwarded_prompt
from .preferences import Preferences
from .replies import Replier
from .runs import RunLauncher
from .runspec import RunSpec
from .scope import ChatScope
from .sessions import Sessions
from .types import TelegramIncomingMessage

BeforeRun = Callable[[TelegramIncomingMessage, ChatScope, Any], Awaitable[bool]]
"""Called with a resolved prompt before it runs; False stops it (forum topics use this)."""

RESUME_NOT_READY = "resume token not ready yet; try replying to the final message."
RUNNING_REPLY_WAIT_S = 60.0

log = get_logger(__name__)


class PromptRunner:
    """Turns prompt messages into runs (see module docstring)."""

    def __init__(
        self,
        *,
        runtime: Any,
        runs: RunLauncher,
        preferences: Preferences,
        sessions: Sessions,
        replier: Replier,
        task_group: TaskGroup,
        scope_of: Callable[[TelegramIncomingMessage], ChatScope],
        forward_coalesce_s: float,
        bot_username: str | None,
        before_run: BeforeRun | None = None,
    ) -> None:
        self.runtime = runtime
        self.runs = runs
        self.preferences = preferences
        self.sessions = sessions
        self.replier = replier
        self.scope_of = scope_of
        self.bot_username = bot_username
        self.before_run = before_run
        self.coalescer = ForwardCoalescer(
            delay_s=forward_coalesce_s, task_group=task_group, on_flush=self._flush
        )

    def submit(self, msg: TelegramIncomingMessage) -> None:
        """A prompt: into the coalescer (forwards may join it), or follow a running run."""
        self.coalescer.submit(msg)

    def running_ref(self, msg: TelegramIncomingMessage) -> MessageRef | None:
        """The progress message ``msg`` replies to, when its run is still going."""
        if msg.reply_to_message_id is None:
            return None
        ref = MessageRef(channel_id=msg.chat_id, message_id=msg.reply_to_message_id)
        return ref if ref in self.runs.running_tasks else None

    async def _flush(
        self, prompt: TelegramIncomingMessage, forwards: list[TelegramIncomingMessage]
    ) -> None:
        text = format_forwarded_prompt(prompt, forwards)
        try:
            await self.run_prompt(prompt, text)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.prompt.failed", error=str(exc))
            await self.replier.send_error(prompt, str(exc) or type(exc).__name__)

    def strip_bot_mention(self, text: str) -> str:
        """Drop a leading ``@<bot>`` mention (it would otherwise read as an ``@branch``)."""
        username = self.bot_username
        if not username:
            return text
        stripped = text.lstrip()
        mention = f"@{username}"
        if stripped[: len(mention)].lower() == mention.lower() and (
            len(stripped) == len(mention) or stripped[len(mention)].isspace()
        ):
            return stripped[len(mention) :].lstrip(" \t")
        return text

    async def ambient_context(self, msg: TelegramIncomingMessage) -> RunContext | None:
        """The context ``msg`` runs in when it names none: its managed topic's binding, else
        the chat's ``/ctx`` binding, else the chat's project (file transfer uses it too)."""
        context, _source = await self.preferences.ambient_context(self.scope_of(msg))
        return context

    async def run_prompt(self, msg: TelegramIncomingMessage, text: str) -> None:
        """Resolve directives/context/resume for a prompt and run (or queue) it."""
        scope = self.scope_of(msg)
        text = self.strip_bot_mention(text)
        ambient = await self.ambient_context(msg)
        try:
            resolved = self.runtime.resolve_message(
                text=text,
                reply_text=msg.reply_to_text,
                ambient_context=ambient,
                chat_id=msg.chat_id,
            )
        except DirectiveError as exc:
            await self.replier.send_error(msg, str(exc))
            return
        if self.before_run is not None and not await self.before_run(msg, scope, resolved):
            return
        choice = await self.preferences.engine_choice(
            scope, directive=resolved.directive_engine, context=resolved.context
        )
        engine_override = choice.engine
        session_key = self.sessions.key_for(msg, scope)
        resume = resolved.resume_token
        if resume is None and session_key is not None:
            engine = self.runtime.resolve_engine(
                engine_override=engine_override, context=resolved.context
            )
            resume = await self.sessions.get(session_key, engine)
        await self.runs.start(
            RunSpec(
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
                scope=scope,
            )
        )

    async def follow_up_running(self, msg: TelegramIncomingMessage, ref: MessageRef) -> None:
        """A reply to a running progress message: wait for its thread, then queue on it."""
        task = self.runs.running_tasks.get(ref)
        if task is None:
            self.coalescer.submit(msg)
            return
        if task.resume is None:
            with anyio.move_on_after(RUNNING_REPLY_WAIT_S):
                await task.resume_ready.wait()
        token = task.resume
        if token is None:
            await self.replier.reply(msg, RESUME_NOT_READY)
            return
        scope = self.scope_of(msg)
        ambient = task.context or (await self.preferences.ambient_context(scope))[0]
        try:
            resolved = self.runtime.resolve_message(
                text=msg.text, reply_text=None, ambient_context=ambient, chat_id=msg.chat_id
            )
        except DirectiveError as exc:
            await self.replier.send_error(msg, str(exc))
            return
        await self.runs.enqueue(
            RunSpec(
                chat_id=msg.chat_id,
                user_msg_id=msg.message_id,
                text=resolved.prompt,
                thread_id=msg.thread_id,
                reply_to=ref,
                resume_token=token,
                engine_override=None,
                context=task.context,
                session_key=self.sessions.key_for(msg, scope),
                scope=scope,
            )
        )


__all__ = ["RESUME_NOT_READY", "PromptRunner"]
