"""Trigger mode: in ``mentions`` mode a message runs only when it mentions the bot, replies to
the bot, or starts with a known command (reserved, plugin, engine or project)."""

from __future__ import annotations

from typing import Any

from takopi.ids import RESERVED_CHAT_COMMANDS

from .dispatch import PluginCommands
from .preferences import Preferences
from .scope import ChatScope
from .types import TelegramIncomingMessage


class TriggerGate:
    """Decides whether a message triggers a run under its scope's trigger mode."""

    def __init__(
        self,
        *,
        runtime: Any,
        preferences: Preferences,
        plugins: PluginCommands,
        bot_username: str | None,
    ) -> None:
        self.runtime = runtime
        self.preferences = preferences
        self.plugins = plugins
        self.bot_username = bot_username

    async def triggered(
        self, msg: TelegramIncomingMessage, scope: ChatScope, command: str | None
    ) -> bool:
        # private chats too, as in the reference
        if await self.preferences.trigger_mode(scope) != "mentions":
            return True
        username = (self.bot_username or "").lower()
        if username and f"@{username}" in msg.text.lower():
            return True
        if msg.reply_to_is_bot or (username and (msg.reply_to_username or "").lower() == username):
            return True
        if command is not None:
            return (
                command in RESERVED_CHAT_COMMANDS
                or command in set(self.runtime.engine_ids)
                or bool(self.runtime.normalize_project_key(command))
                or await self.plugins.is_plugin_command(command)
            )
        return False


__all__ = ["TriggerGate"]
