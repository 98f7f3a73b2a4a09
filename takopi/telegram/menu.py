"""The bot command menu (``setMyCommands``): engines, project aliases, command plugins and
the built-in commands. Sent at startup and again whenever the runtime changes (a hot reload,
an engine becoming ready or quarantined): the runtime's ``revision`` counter — bumped by
``TransportRuntime.update`` and by every snapshot the supervisor pushes to a transport
worker — is watched, and the menu is re-sent when it changed."""

from __future__ import annotations

from typing import Any

import anyio

from takopi.logging import get_logger

from .client import BotClient
from .commands import build_command_menu
from .dispatch import PluginCommands

REVISION_POLL_S = 1.0
"""How often the runtime's revision is looked at (a local attribute read, no RPC)."""

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
        self._sent: list[dict[str, str]] | None = None

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

    async def sync(self, *, force: bool = True) -> None:
        """``setMyCommands`` (unless ``force`` is off and the menu is unchanged); a failure
        is logged, never fatal."""
        try:
            menu = self.build()
            if not force and menu == self._sent:
                return
            ok = await self.bot.set_my_commands(menu)
            if ok:
                self._sent = menu
            else:
                log.warning("telegram.commands.sync_failed")
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.warning("telegram.commands.sync_failed", error=str(exc))

    async def follow_runtime(self, interval: float = REVISION_POLL_S) -> None:
        """Re-send the menu after each runtime change (see module docstring). Runtimes
        without a ``revision`` are not watched."""
        seen = getattr(self.runtime, "revision", None)
        if seen is None:
            return
        while True:
            await anyio.sleep(interval)
            revision = getattr(self.runtime, "revision", None)
            if revision == seen:
                continue
            seen = revision
            log.info("telegram.commands.runtime_changed", revision=revision)
            await self.sync(force=False)


__all__ = ["CommandMenu"]
