"""``/ctx`` (the chat's or the topic's bound context) and ``/topic`` (create or find the forum
topic of a project/branch). Texts are the reference's.

Inside a managed topic ``/ctx set`` binds the topic and renames it to ``<alias> @<branch>``
(``@<branch>`` in a project's own chat); outside, it binds the chat (chat preferences)."""

from __future__ import annotations

from typing import Any

from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.transport import RenderedMessage, SendOptions

from .chat_prefs import ChatPrefsStore
from .commands import split_command_args
from .preferences import Preferences
from .render import render_markdown
from .replies import Replier
from .scope import ChatScope
from .topic_state import TopicStateStore
from .topics import TopicScope
from .types import TelegramIncomingMessage

CTX_USAGE = "usage: /ctx set <project> [@branch]"
CTX_UNKNOWN = "unknown `/ctx` command. use `/ctx`, `/ctx set`, or `/ctx clear`."
UNBOUND_TOPIC = (
    "this topic isn't bound to a project yet.\n\n"
    "bind it with `/ctx set <project> [@branch]`, or create a bound topic with "
    "`/topic <project> @branch`."
)

log = get_logger(__name__)


class ContextError(Exception):
    """A bad ``/ctx set`` / ``/topic`` argument (the message is shown after ``error:``)."""


class ContextCommands:
    """``/ctx`` and ``/topic`` (see module docstring)."""

    def __init__(
        self,
        *,
        runtime: Any,
        bot: Any,
        transport: Any,
        chat_prefs: ChatPrefsStore,
        topics: TopicStateStore | None,
        topic_scope: TopicScope,
        preferences: Preferences,
        replier: Replier,
    ) -> None:
        self.runtime = runtime
        self.bot = bot
        self.transport = transport
        self.chat_prefs = chat_prefs
        self.topics = topics
        self.topic_scope = topic_scope
        self.preferences = preferences
        self.replier = replier

    # -- formatting ---------------------------------------------------------------------
    def fmt(self, context: RunContext | None) -> str:
        if context is None or not (context.project or context.branch):
            return "none"
        alias = self.runtime.project_alias_for_key(context.project) if context.project else ""
        return f"{alias} @{context.branch}".strip() if context.branch else alias

    def title_for(self, chat_id: int, context: RunContext) -> str:
        """``<alias> @<branch>``; ``@<branch>`` in the project's own chat."""
        chat_ctx = self.runtime.default_context_for_chat(chat_id)
        if context.branch and chat_ctx is not None and chat_ctx.project == context.project:
            return f"@{context.branch}"
        return self.fmt(context)

    def _default_project(self, chat_id: int) -> str | None:
        chat_ctx = self.runtime.default_context_for_chat(chat_id)
        if chat_ctx is not None:
            return chat_ctx.project  # type: ignore[no-any-return]
        projects = getattr(self.runtime, "_projects", None)
        return getattr(projects, "default_project", None)

    def parse_target(
        self, chat_id: int, args: list[str], *, fallback_project: str | None = None
    ) -> RunContext:
        """``<project> [@branch]`` or ``@branch`` (project from the chat or the default)."""
        if len(args) > 2:
            raise ContextError("too many arguments")
        if not args:
            raise ContextError("project is required")
        if args[0].startswith("@"):
            if len(args) > 1:
                raise ContextError("too many arguments")
            project = fallback_project or self._default_project(chat_id)
            if project is None:
                raise ContextError("project is required")
            branch: str | None = args[0][1:] or None
        else:
            project = self.runtime.normalize_project_key(args[0])
            if project is None:
                raise ContextError(f"unknown project '{args[0]}'")
            branch = None
            if len(args) == 2:
                if not args[1].startswith("@"):
                    raise ContextError("branch must be prefixed with @")
                branch = args[1][1:] or None
        chat_ctx = self.runtime.default_context_for_chat(chat_id)
        if chat_ctx is not None and chat_ctx.project != project:
            raise ContextError(f"project mismatch for this chat; expected '{chat_ctx.project}'.")
        return RunContext(project=project, branch=branch)

    # -- /ctx ---------------------------------------------------------------------------
    async def handle_ctx(
        self, msg: TelegramIncomingMessage, scope: ChatScope, args_text: str
    ) -> None:
        args = list(split_command_args(args_text))
        topic_key = scope.topic_key if self.topics is not None else None
        if not args:
            await self._show(msg, scope, topic_key)
            return
        action = args[0].lower()
        if action == "clear" and len(args) == 1:
            if topic_key is not None and self.topics is not None:
                await self.topics.set_context(topic_key, None)
                await self.replier.reply(msg, "topic context cleared.")
            else:
                await self.chat_prefs.set_context(msg.chat_id, None)
                await self.replier.reply(msg, "chat context cleared.")
            return
        if action != "set":
            await self.replier.reply(msg, CTX_UNKNOWN)
            return
        fallback = None
        if topic_key is not None and self.topics is not None:
            bound = await self.topics.get_context(topic_key)
            fallback = bound.project if bound is not None else None
        try:
            context = self.parse_target(msg.chat_id, args[1:], fallback_project=fallback)
        except ContextError as exc:
            await self.replier.reply(msg, f"error:\n{exc}\n{CTX_USAGE}")
            return
        if topic_key is not None and scope.thread_id is not None:
            await self.bind_topic(scope.chat_id, scope.thread_id, context)
            await self.replier.reply(msg, f"topic bound to `{self.fmt(context)}`")
            return
        await self.chat_prefs.set_context(msg.chat_id, context)
        await self.replier.reply(msg, f"chat bound to `{self.fmt(context)}`")

    async def _show(
        self, msg: TelegramIncomingMessage, scope: ChatScope, topic_key: str | None
    ) -> None:
        resolved, source = await self.preferences.ambient_context(scope)
        if topic_key is not None and self.topics is not None:
            bound = await self.topics.get_context(topic_key)
            engines = await self.topics.session_engines(topic_key)
            lines = [
                f"topics: enabled (scope={self.topic_scope.label()})",
                f"bound ctx: {self.fmt(bound)}",
                f"resolved ctx: {self.fmt(resolved)} (source: {source})",
                f"sessions: {', '.join(engines) or 'none'}",
            ]
        else:
            bound = await self.chat_prefs.get_context(msg.chat_id)
            lines = [
                f"bound ctx: {self.fmt(bound)}",
                f"resolved ctx: {self.fmt(resolved)} (source: {source})",
            ]
        if bound is None:
            lines.append("note: no bound context — bind with /ctx set <project> [@branch]")
        await self.replier.reply(msg, "\n".join(lines))

    async def bind_topic(self, chat_id: int, thread_id: int, context: RunContext) -> None:
        """Bind a topic to ``context`` and rename it to match (a failed rename is logged)."""
        assert self.topics is not None
        title = self.title_for(chat_id, context)
        await self.topics.set_context(f"{chat_id}:{thread_id}", context, title=title)
        if not await self.bot.edit_forum_topic(chat_id, thread_id, title):
            log.warning("telegram.topics.rename_failed", chat_id=chat_id, thread_id=thread_id)

    async def before_run(
        self, msg: TelegramIncomingMessage, scope: ChatScope, resolved: Any
    ) -> bool:
        """In a managed topic: a project directive binds an unbound topic (and renames it);
        a prompt in an unbound topic of the main chat gets the unbound-topic notice."""
        key = scope.topic_key
        if key is None or self.topics is None or scope.thread_id is None:
            return True
        context = resolved.context
        if context is not None and resolved.context_source == "directives":
            if await self.topics.get_context(key) is None:
                await self.bind_topic(scope.chat_id, scope.thread_id, context)
            return True
        if context is None and self.topic_scope.is_main_chat(scope.chat_id):
            await self.replier.reply(msg, UNBOUND_TOPIC)
            return False
        return True

    # -- /topic -------------------------------------------------------------------------
    def topic_usage(self, chat_id: int) -> str:
        if self.runtime.default_context_for_chat(chat_id) is not None:
            return "usage: `/topic @branch`"
        return "usage: `/topic <project> @branch`"

    async def handle_topic(
        self, msg: TelegramIncomingMessage, scope: ChatScope, args_text: str
    ) -> None:
        assert self.topics is not None
        args = list(split_command_args(args_text))
        try:
            context = self.parse_target(msg.chat_id, args)
        except ContextError as exc:
            if not args:
                await self.replier.reply(msg, self.topic_usage(msg.chat_id))
            else:
                await self.replier.reply(msg, f"error:\n{exc}\n{self.topic_usage(msg.chat_id)}")
            return
        if not context.branch:
            await self.replier.reply(msg, self.topic_usage(msg.chat_id))
            return
        title = self.title_for(msg.chat_id, context)
        for thread_id in await self.topics.find_bound(msg.chat_id, context):
            if await self.bot.edit_forum_topic(msg.chat_id, thread_id, title):
                await self.replier.reply(
                    msg, f"topic already exists for `{self.fmt(context)}` in this chat."
                )
                return
            # the topic is gone (deleted by hand): forget it and create a new one
            log.info("telegram.topics.stale", chat_id=msg.chat_id, thread_id=thread_id)
            await self.topics.delete(f"{msg.chat_id}:{thread_id}")
        created = await self.bot.create_forum_topic(msg.chat_id, title)
        thread = created.get("message_thread_id") if isinstance(created, dict) else None
        if not isinstance(thread, int):
            await self.replier.reply(msg, "error:\nfailed to create the topic.")
            return
        await self.topics.set_context(f"{msg.chat_id}:{thread}", context, title=title)
        await self.replier.reply(msg, f"created topic `{title}`.")
        text, entities = render_markdown(f"topic bound to `{self.fmt(context)}`")
        await self.transport.send(
            channel_id=msg.chat_id,
            message=RenderedMessage(text=text, extra={"entities": entities}),
            options=SendOptions(notify=False, thread_id=thread),
        )


__all__ = ["UNBOUND_TOPIC", "ContextCommands", "ContextError"]
