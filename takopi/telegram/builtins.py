"""Built-in chat commands on chat-level preferences: ``/agent``, ``/model``, ``/reasoning``,
``/trigger`` and ``/ctx`` (forum topics are not supported by this build, so every setting is
chat-wide). Changing settings is open to private chats and group admins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from takopi.context import RunContext
from takopi.logging import get_logger

from .chat_prefs import ChatPrefsStore
from .commands import split_command_args
from .preferences import REASONING_LEVELS, REASONING_SUPPORTED_ENGINES, EngineChoice, Preferences
from .scope import ChatScope
from .types import TelegramIncomingMessage

TRIGGER_MODES = ("all", "mentions")
BUILTIN_COMMANDS = frozenset({"agent", "model", "reasoning", "trigger", "ctx"})
ADMIN_STATUSES = frozenset({"creator", "administrator"})

log = get_logger(__name__)


class BuiltinCommands:
    """Handlers for the built-in commands; ``reply(msg, markdown)`` sends the answers."""

    def __init__(
        self,
        *,
        runtime: Any,
        prefs: ChatPrefsStore,
        preferences: Preferences,
        reply: Callable[[TelegramIncomingMessage, str], Awaitable[Any]],
        is_admin: Callable[[TelegramIncomingMessage], Awaitable[bool]],
    ) -> None:
        self.runtime = runtime
        self.prefs = prefs
        self.preferences = preferences
        self.reply = reply
        self.is_admin = is_admin

    async def ambient_context(self, chat_id: int) -> tuple[RunContext | None, str]:
        return await self.preferences.ambient_context(ChatScope(chat_id))

    async def engine_choice(
        self, chat_id: int, *, directive: str | None, context: RunContext | None
    ) -> EngineChoice:
        return await self.preferences.engine_choice(
            ChatScope(chat_id), directive=directive, context=context
        )

    async def run_overrides(self, chat_id: int, engine: str) -> tuple[str | None, str | None]:
        overrides = await self.preferences.run_overrides(ChatScope(chat_id), engine)
        return overrides.model, overrides.reasoning

    async def trigger_mode(self, chat_id: int) -> str:
        return await self.preferences.trigger_mode(ChatScope(chat_id))

    # -- dispatch -------------------------------------------------------------------------
    async def handle(self, msg: TelegramIncomingMessage, name: str, args_text: str) -> None:
        args = list(split_command_args(args_text))
        handler = {
            "agent": self._agent,
            "model": self._model,
            "reasoning": self._reasoning,
            "trigger": self._trigger,
            "ctx": self._ctx,
        }[name]
        if (
            args
            and args[0].lower() in {"set", "clear", "all", "mentions"}
            and not (name == "ctx" or await self.is_admin(msg))
        ):
            await self.reply(msg, f"changing `/{name}` settings is restricted to group admins.")
            return
        await handler(msg, args)

    async def _choice(self, msg: TelegramIncomingMessage) -> EngineChoice:
        context, _ = await self.ambient_context(msg.chat_id)
        return await self.engine_choice(msg.chat_id, directive=None, context=context)

    async def _agent(self, msg: TelegramIncomingMessage, args: list[str]) -> None:
        chat = msg.chat_id
        available = list(self.runtime.available_engine_ids())
        if not args:
            choice = await self._choice(msg)
            model, reasoning = await self.run_overrides(chat, choice.engine)
            context, _ = await self.ambient_context(chat)
            project = context.project if context else None
            project_engine = self.runtime.project_default_engine(project) if project else None
            lines = [
                f"engine: `{choice.engine}` ({choice.source})",
                f"model: `{model}` (chat default)" if model else "model: default (no override)",
                f"reasoning: `{reasoning}` (chat default)"
                if reasoning
                else "reasoning: default (no override)",
                "defaults: chat: {}, project: {}, global: {}".format(
                    await self.prefs.get(chat, "default_engine") or "none",
                    project_engine or "none",
                    self.runtime.default_engine,
                ),
                f"available: {', '.join(available) or 'none'}",
            ]
            await self.reply(msg, "  \n".join(lines))
            return
        action = args[0].lower()
        if action == "set" and len(args) == 2:
            engine = args[1].lower()
            if engine not in set(self.runtime.engine_ids):
                await self.reply(
                    msg,
                    f"unknown engine `{engine}`.\navailable engines: `{', '.join(available)}`",
                )
                return
            await self.prefs.set(chat, "default_engine", engine)
            await self.reply(msg, f"chat default engine set to `{engine}`.")
            return
        if action == "clear" and len(args) == 1:
            await self.prefs.set(chat, "default_engine", None)
            await self.reply(msg, "chat default engine cleared.")
            return
        await self.reply(msg, "usage: `/agent`, `/agent set <engine>`, or `/agent clear`")

    async def _override(
        self, msg: TelegramIncomingMessage, args: list[str], *, field: str, usage: str
    ) -> None:
        chat = msg.chat_id
        engines = set(self.runtime.engine_ids)
        if not args:
            choice = await self._choice(msg)
            value = await self.prefs.get_override(chat, choice.engine, field)
            shown = f"`{value}` (chat default)" if value else "default (no override)"
            await self.reply(
                msg, f"engine: `{choice.engine}` ({choice.source})  \n{field}: {shown}"
            )
            return
        action = args[0].lower()
        if action == "set" and len(args) >= 2:
            rest = args[1:]
            if len(rest) >= 2 and rest[0].lower() in engines:
                engine, value = rest[0].lower(), " ".join(rest[1:])
            else:
                engine, value = (await self._choice(msg)).engine, " ".join(rest)
            if field == "reasoning":
                value = value.lower()
                if value not in REASONING_LEVELS:
                    await self.reply(
                        msg,
                        f"invalid reasoning level `{value}`.\n"
                        f"valid levels: {', '.join(REASONING_LEVELS)}",
                    )
                    return
            await self.prefs.set_override(chat, engine, field, value)
            text = f"{field} override for `{engine}` set to `{value}`."
            if field == "model":
                text += "\nIf you want a clean start on the new model, run `/new`."
            elif engine not in REASONING_SUPPORTED_ENGINES:
                text += f"\nnote: `{engine}` does not support reasoning overrides; it is ignored."
            await self.reply(msg, text)
            return
        if action == "clear" and len(args) <= 2:
            engine = args[1].lower() if len(args) == 2 else (await self._choice(msg)).engine
            await self.prefs.set_override(chat, engine, field, None)
            await self.reply(msg, f"{field} override for `{engine}` cleared.")
            return
        await self.reply(msg, usage)

    async def _model(self, msg: TelegramIncomingMessage, args: list[str]) -> None:
        await self._override(
            msg,
            args,
            field="model",
            usage="usage: `/model`, `/model set [engine] <model>`, or `/model clear [engine]`",
        )

    async def _reasoning(self, msg: TelegramIncomingMessage, args: list[str]) -> None:
        await self._override(
            msg,
            args,
            field="reasoning",
            usage="usage: `/reasoning`, `/reasoning set [engine] <level>`, "
            "or `/reasoning clear [engine]`",
        )

    async def _trigger(self, msg: TelegramIncomingMessage, args: list[str]) -> None:
        chat = msg.chat_id
        if not args:
            mode = await self.trigger_mode(chat)
            source = "chat default" if mode == "mentions" else "default"
            await self.reply(
                msg, f"trigger: `{mode}` ({source})  \navailable: {', '.join(TRIGGER_MODES)}"
            )
            return
        action = args[0].lower()
        if action == "mentions" and len(args) == 1:
            await self.prefs.set(chat, "trigger_mode", "mentions")
            await self.reply(msg, "chat trigger mode set to `mentions`.")
            return
        if action in {"all", "clear"} and len(args) == 1:
            await self.prefs.set(chat, "trigger_mode", None)
            await self.reply(msg, "chat trigger mode reset to `all`.")
            return
        await self.reply(msg, "usage: `/trigger`, `/trigger all|mentions`, or `/trigger clear`")

    async def _ctx(self, msg: TelegramIncomingMessage, args: list[str]) -> None:
        chat = msg.chat_id
        if not args:
            bound = await self.prefs.get_context(chat)
            context, source = await self.ambient_context(chat)
            lines = [
                f"bound ctx: {self._fmt(bound)}",
                f"resolved ctx: {self._fmt(context)} (source: {source})",
            ]
            await self.reply(msg, "  \n".join(lines))
            return
        action = args[0].lower()
        if action == "clear" and len(args) == 1:
            await self.prefs.set_context(chat, None)
            await self.reply(msg, "chat context cleared.")
            return
        if action != "set":
            await self.reply(msg, "usage: `/ctx`, `/ctx set <project> [@branch]`, or `/ctx clear`")
            return
        rest = args[1:]
        if not rest or len(rest) > 2:
            await self.reply(
                msg,
                "error:\ntoo many arguments" if rest else "usage: `/ctx set <project> [@branch]`",
            )
            return
        project: str | None = None
        branch: str | None = None
        if rest[0].startswith("@"):
            branch = rest[0][1:]
            chat_ctx = self.runtime.default_context_for_chat(chat)
            project = (
                chat_ctx.project
                if chat_ctx
                else getattr(getattr(self.runtime, "_projects", None), "default_project", None)
            )
            if project is None:
                await self.reply(msg, "usage: `/ctx set <project> [@branch]`")
                return
        else:
            key = self.runtime.normalize_project_key(rest[0])
            if key is None:
                await self.reply(msg, f"error:\nunknown project '{rest[0]}'")
                return
            project = key
            if len(rest) == 2:
                if not rest[1].startswith("@"):
                    await self.reply(msg, "error:\nbranch must be prefixed with @")
                    return
                branch = rest[1][1:]
        chat_project = self.runtime.default_context_for_chat(chat)
        if chat_project is not None and chat_project.project != project:
            await self.reply(
                msg,
                f"error:\nproject mismatch for this chat; expected '{chat_project.project}'.",
            )
            return
        context = RunContext(project=project, branch=branch or None)
        await self.prefs.set_context(chat, context)
        await self.reply(msg, f"chat context set to {self._fmt(context)}.")

    def _fmt(self, context: RunContext | None) -> str:
        if context is None or not context.project:
            return "none"
        alias = self.runtime.project_alias_for_key(context.project)
        return f"`{alias} @{context.branch}`" if context.branch else f"`{alias}`"


__all__ = [
    "BUILTIN_COMMANDS",
    "REASONING_LEVELS",
    "REASONING_SUPPORTED_ENGINES",
    "BuiltinCommands",
    "EngineChoice",
]
