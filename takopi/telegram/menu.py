"""The bot command menu (``setMyCommands``): engines, project aliases, command plugins and
the built-in commands."""

from __future__ import annotations

from typing import Any

import anyio

from takopi.logging import get_logger

from .client import BotClient
from .commands import build_command_menu
from .dispatch import PluginCommands

log = get_logger(__name__)


class CommandMenu:
    """Builds and sends the command menu."""

    def __init__(
        self,
        *,
        runtime: Any,
        bot: BotClient,
        plugins: PluginCommands,
        builtins: list[tuple[str, str]],
    ) -> None:
        self.runtime = runtime
        self.bot = bot
        self.plugins = plugins
        self.builtins = builtins

    def build(self) -> list[dict[str, str]]:
        plugin_commands = [
            (command_id, self.plugins.describe(command_id))
            for command_id in sorted(self.plugins.command_ids())
        ]
        return build_command_menu(
            engines=self.runtime.available_engine_ids(),
            projects=self.runtime.project_aliases(),
            plugin_commands=plugin_commands,
            builtins=self.builtins,
        )

    async def sync(self) -> None:
        """``setMyCommands``; a failure is logged, never fatal."""
        try:
            ok = await self.bot.set_my_commands(self.build())
            if not ok:
                log.warning("telegram.commands.sync_failed")
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.warning("telegram.commands.sync_failed", error=str(exc))


__all__ = ["CommandMenu"]
