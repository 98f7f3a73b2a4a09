"""Command plugins in the chat: which ids exist, dispatching ``/<id>`` to
``get_command(...).handle(ctx)`` (a proxy in a transport worker), and the ``setMyCommands``
menu (mixed into :class:`~takopi.telegram.loop.TelegramLoop`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from takopi.commands import CommandContext, get_command, list_command_ids
from takopi.logging import get_logger
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .bridge import TelegramBridgeConfig
from .builtins import BuiltinCommands
from .client import BotClient
from .commands import build_command_menu, split_command_args
from .executor import TelegramCommandExecutor
from .render import render_markdown
from .types import TelegramIncomingMessage

log = get_logger(__name__)


class PluginCommandsMixin:
    """Plugin-command handling of the chat loop; relies on the loop's attributes below."""

    cfg: TelegramBridgeConfig
    runtime: Any
    bot: BotClient
    transport: Any
    builtins: BuiltinCommands | None
    _plugin_ids: set[str] | None
    send_error: Callable[[TelegramIncomingMessage, str], Awaitable[None]]

    def command_ids(self) -> set[str]:
        """Command plugins: installed here, plus any the runtime knows about (a supervisor
        may expose ``runtime.command_ids()`` for plugins living in other interpreters)."""
        ids: set[str] = set()
        try:
            ids |= set(list_command_ids(allowlist=self.runtime.allowlist))
        except Exception as exc:
            log.warning("telegram.commands.list_failed", error=str(exc))
        remote = getattr(self.runtime, "command_ids", None)
        if callable(remote):
            try:
                ids |= {str(i) for i in remote()}
            except Exception as exc:
                log.warning("telegram.commands.list_failed", error=str(exc), source="runtime")
        return ids

    async def is_plugin_command(self, name: str) -> bool:
        if name in set(self.runtime.engine_ids) or self.runtime.normalize_project_key(name):
            return False
        if self._plugin_ids is None or name not in self._plugin_ids:
            # unknown ids trigger a refresh (a plugin may have been installed meanwhile)
            self._plugin_ids = self.command_ids()
        return name in self._plugin_ids

    async def dispatch_command(
        self, msg: TelegramIncomingMessage, name: str, args_text: str
    ) -> None:
        try:
            backend = get_command(name, allowlist=self.runtime.allowlist, required=False)
            if backend is None:
                await self.send_error(msg, f"command `{name}` is unavailable.")
                return
            reply_to = (
                MessageRef(channel_id=msg.chat_id, message_id=msg.reply_to_message_id)
                if msg.reply_to_message_id is not None
                else None
            )
            ctx = CommandContext(
                command=name,
                text=msg.text,
                args_text=args_text,
                args=split_command_args(args_text),
                message=MessageRef(
                    channel_id=msg.chat_id,
                    message_id=msg.message_id,
                    raw=msg.raw,
                    thread_id=msg.thread_id,
                    sender_id=msg.sender_id,
                ),
                reply_to=reply_to,
                reply_text=msg.reply_to_text,
                config_path=self.runtime.config_path,
                plugin_config=self.runtime.plugin_config(name),
                runtime=self.runtime,
                executor=TelegramCommandExecutor(self, msg),  # type: ignore[arg-type]
            )
            result = await backend.handle(ctx)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.command.failed", command=name, error=str(exc))
            await self.send_error(msg, str(exc) or type(exc).__name__)
            return
        if result is None:
            return
        text, entities = render_markdown(result.text)
        target = result.reply_to or MessageRef(
            channel_id=msg.chat_id, message_id=msg.message_id, thread_id=msg.thread_id
        )
        await self.transport.send(
            channel_id=msg.chat_id,
            message=RenderedMessage(text=text, extra={"entities": entities}),
            options=SendOptions(reply_to=target, notify=result.notify, thread_id=msg.thread_id),
        )

    async def sync_commands(self) -> None:
        """``setMyCommands``; a failure is logged, never fatal."""
        try:
            plugin_commands: list[tuple[str, str | None]] = []
            for command_id in sorted(self.command_ids()):
                description: str | None = None
                try:
                    backend = get_command(
                        command_id, allowlist=self.runtime.allowlist, required=False
                    )
                    description = getattr(backend, "description", None) if backend else None
                except Exception as exc:
                    log.warning("telegram.commands.load_failed", command=command_id, error=str(exc))
                plugin_commands.append((command_id, description))
            builtins: list[tuple[str, str]] = []
            if self.cfg.session_mode == "chat":
                builtins.append(("new", "start a new thread"))
            if self.builtins is not None:
                builtins += [
                    ("ctx", "show or update context"),
                    ("agent", "set default engine"),
                    ("model", "set model override"),
                    ("reasoning", "set reasoning override"),
                    ("trigger", "set trigger mode"),
                ]
            if self.cfg.files.enabled:
                builtins.append(("file", "upload or fetch files"))
            builtins.append(("cancel", "cancel run"))
            menu = build_command_menu(
                engines=self.runtime.available_engine_ids(),
                projects=self.runtime.project_aliases(),
                plugin_commands=plugin_commands,
                builtins=builtins,
            )
            ok = await self.bot.set_my_commands(menu)
            if not ok:
                log.warning("telegram.commands.sync_failed")
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.warning("telegram.commands.sync_failed", error=str(exc))


__all__ = ["PluginCommandsMixin"]
