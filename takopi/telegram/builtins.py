"""Built-in chat commands: ``/agent``, ``/model``, ``/reasoning``, ``/trigger`` here;
``/ctx`` and ``/topic`` in :mod:`.context_cmds`. Texts are the reference's.

Settings go to the forum topic when the command is sent in a managed topic, else to the
chat. Changing them is open to private chats and group admins (:mod:`.permissions`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from takopi.logging import get_logger

from .chat_prefs import ChatPrefsStore
from .commands import split_command_args
from .preferences import REASONING_LEVELS, Preferences
from .scope import ChatScope
from .topic_state import TopicStateStore
from .types import Reply, TelegramIncomingMessage

TRIGGER_MODES = ("all", "mentions")
BUILTIN_COMMANDS = frozenset({"agent", "model", "reasoning", "trigger"})
CHANGES = frozenset({"set", "clear", "all", "mentions"})

AdminCheck = Callable[[TelegramIncomingMessage], Awaitable[str]]

log = get_logger(__name__)


def _where(scope: ChatScope) -> str:
    return "topic" if scope.topic_key is not None else "chat"


class BuiltinCommands:
    """Handlers of the settings commands (see module docstring)."""

    def __init__(
        self,
        *,
        runtime: Any,
        chat_prefs: ChatPrefsStore,
        topics: TopicStateStore | None,
        preferences: Preferences,
        reply: Reply,
        check_admin: AdminCheck,
        refusal: Callable[[str, Any], str],
    ) -> None:
        self.runtime = runtime
        self.chat_prefs = chat_prefs
        self.topics = topics
        self.preferences = preferences
        self.reply = reply
        self.check_admin = check_admin
        self.refusal = refusal

    async def handle(
        self, msg: TelegramIncomingMessage, scope: ChatScope, name: str, args_text: str
    ) -> None:
        args = list(split_command_args(args_text))
        if args and args[0].lower() in CHANGES:
            check = await self.check_admin(msg)
            if check != "ok":
                await self.reply(msg, self.refusal(name, check))
                return
        handler = {
            "agent": self._agent,
            "model": self._model,
            "reasoning": self._reasoning,
            "trigger": self._trigger,
        }[name]
        await handler(msg, scope, args)

    # -- shared helpers -----------------------------------------------------------------
    def _engine_ids(self) -> list[str]:
        """Engines that exist: a plugin that failed to load is not an engine (reference)."""
        try:
            failed = set(self.runtime.engine_ids_with_status("load_error"))
        except Exception:
            failed = set()
        return [e for e in self.runtime.engine_ids if e not in failed]

    def _engines_listed(self) -> list[str]:
        """Available engines first, then the others (as the reference lists them)."""
        available = list(self.runtime.available_engine_ids())
        return available + [e for e in self._engine_ids() if e not in available]

    def _unknown_engine(self, engine: str) -> str:
        return (
            f"unknown engine `{engine}`.\navailable engines: `{', '.join(self._engines_listed())}`"
        )

    async def _current_engine(self, scope: ChatScope) -> tuple[str, str]:
        context, _ = await self.preferences.ambient_context(scope)
        choice = await self.preferences.engine_choice(scope, directive=None, context=context)
        return choice.engine, choice.source

    async def _set_scoped(self, scope: ChatScope, field: str, value: str | None) -> None:
        key = scope.topic_key
        if key is not None and self.topics is not None:
            await self.topics.set(key, field, value)
        else:
            await self.chat_prefs.set(scope.chat_id, field, value)

    async def _set_override(
        self, scope: ChatScope, engine: str, field: str, value: str | None
    ) -> None:
        key = scope.topic_key
        if key is not None and self.topics is not None:
            await self.topics.set_override(key, engine, field, value)
        else:
            await self.chat_prefs.set_override(scope.chat_id, engine, field, value)

    async def _override_line(self, scope: ChatScope, engine: str, field: str) -> str:
        value, source = await self.preferences.override(scope, engine, field)
        return f"{field}: {value} ({source})" if value else f"{field}: default (no override)"

    # -- /agent -------------------------------------------------------------------------
    async def _agent(self, msg: TelegramIncomingMessage, scope: ChatScope, args: list[str]) -> None:
        where = _where(scope)
        if not args:
            engine, source = await self._current_engine(scope)
            context, _ = await self.preferences.ambient_context(scope)
            project = context.project if context else None
            project_engine = self.runtime.project_default_engine(project) if project else None
            lines = [
                f"engine: {engine} ({source})",
                await self._override_line(scope, engine, "model"),
                await self._override_line(scope, engine, "reasoning"),
                "defaults: topic: {}, chat: {}, project: {}, global: {}".format(
                    await self.preferences.topic_value(scope, "default_engine") or "none",
                    await self.preferences.chat_value(scope, "default_engine") or "none",
                    project_engine or "none",
                    self.runtime.default_engine,
                ),
                f"available: {', '.join(self._engines_listed()) or 'none'}",
            ]
            await self.reply(msg, "\n\n".join(lines))
            return
        action = args[0].lower()
        if action == "set" and len(args) == 2:
            engine = args[1].lower()
            if engine not in self._engine_ids():
                await self.reply(msg, self._unknown_engine(engine))
                return
            await self._set_scoped(scope, "default_engine", engine)
            await self.reply(msg, f"{where} default engine set to `{engine}`")
            return
        if action == "clear" and len(args) == 1:
            await self._set_scoped(scope, "default_engine", None)
            await self.reply(msg, f"{where} default engine cleared.")
            return
        await self.reply(msg, "usage: `/agent`, `/agent set <engine>`, or `/agent clear`")

    # -- /model and /reasoning ----------------------------------------------------------
    async def _override(
        self,
        msg: TelegramIncomingMessage,
        scope: ChatScope,
        args: list[str],
        *,
        field: str,
        usage: str,
        available: str,
        clean_start: str,
    ) -> None:
        where = _where(scope)
        engines = set(self._engine_ids())
        if not args:
            engine, source = await self._current_engine(scope)
            topic, chat = await self.preferences.override_layers(scope, engine, field)
            lines = [
                f"engine: {engine} ({source})",
                await self._override_line(scope, engine, field),
                f"defaults: topic: {topic or 'none'}, chat: {chat or 'none'}",
                available,
            ]
            await self.reply(msg, "\n\n".join(lines))
            return
        action = args[0].lower()
        rest = args[1:]
        if action == "set" and rest:
            if rest[0].lower() in engines:
                if len(rest) < 2:
                    await self.reply(msg, usage)
                    return
                engine, value = rest[0].lower(), " ".join(rest[1:])
            else:
                engine, value = (await self._current_engine(scope))[0], " ".join(rest)
            if field == "reasoning":
                value = value.lower()
                if value not in REASONING_LEVELS:
                    await self.reply(
                        msg,
                        f"unknown reasoning level `{value}`.\n"
                        f"available levels: {', '.join(REASONING_LEVELS)}",
                    )
                    return
            await self._set_override(scope, engine, field, value)
            await self.reply(
                msg,
                f"{where} {field} override set to `{value}` for `{engine}`.\n"
                f"If you want a clean start on the {clean_start}, run `/new`.",
            )
            return
        if action == "clear" and len(rest) <= 1:
            if rest and rest[0].lower() not in engines:
                await self.reply(msg, self._unknown_engine(rest[0].lower()))
                return
            engine = rest[0].lower() if rest else (await self._current_engine(scope))[0]
            await self._set_override(scope, engine, field, None)
            await self.reply(msg, f"{where} {field} override cleared.")
            return
        await self.reply(msg, usage)

    async def _model(self, msg: TelegramIncomingMessage, scope: ChatScope, args: list[str]) -> None:
        await self._override(
            msg,
            scope,
            args,
            field="model",
            usage="usage: `/model`, `/model set <model>`, `/model set <engine> <model>`, "
            "or `/model clear [engine]`",
            available=f"available engines: {', '.join(self._engines_listed())}",
            clean_start="new model",
        )

    async def _reasoning(
        self, msg: TelegramIncomingMessage, scope: ChatScope, args: list[str]
    ) -> None:
        await self._override(
            msg,
            scope,
            args,
            field="reasoning",
            usage="usage: `/reasoning`, `/reasoning set <level>`, "
            "`/reasoning set <engine> <level>`, or `/reasoning clear [engine]`",
            available=f"available levels: {', '.join(REASONING_LEVELS)}",
            clean_start="new setting",
        )

    # -- /trigger -----------------------------------------------------------------------
    async def _trigger(
        self, msg: TelegramIncomingMessage, scope: ChatScope, args: list[str]
    ) -> None:
        where = _where(scope)
        if not args:
            topic, chat = await self.preferences.trigger_layers(scope)
            if topic:
                shown = "mentions (topic override)"
            elif chat:
                shown = "mentions (chat default)"
            else:
                shown = "all (default)"
            lines = [
                f"trigger: {shown}",
                f"defaults: topic: {topic or 'none'}, chat: {chat or 'none'}",
                f"available: {', '.join(TRIGGER_MODES)}",
            ]
            await self.reply(msg, "\n\n".join(lines))
            return
        action = args[0].lower()
        if action in TRIGGER_MODES and len(args) == 1:
            # "all" is stored as unset, so a topic cannot turn a chat's "mentions" back off
            await self._set_scoped(
                scope, "trigger_mode", "mentions" if action == "mentions" else None
            )
            await self.reply(msg, f"{where} trigger mode set to `{action}`")
            return
        if action == "clear" and len(args) == 1:
            await self._set_scoped(scope, "trigger_mode", None)
            text = (
                "topic trigger mode cleared (using chat default)."
                if where == "topic"
                else "chat trigger mode reset to `all`."
            )
            await self.reply(msg, text)
            return
        await self.reply(
            msg, "usage: `/trigger`, `/trigger all`, `/trigger mentions`, or `/trigger clear`"
        )


__all__ = ["BUILTIN_COMMANDS", "TRIGGER_MODES", "BuiltinCommands"]
