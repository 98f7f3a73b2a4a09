"""Command plugins in the chat: which ids exist and dispatching ``/<id>`` to
``get_command(...).handle(ctx)`` (a proxy in a transport worker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from takopi.commands import CommandContext, get_command, list_command_ids
from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.transport import MessageRef

from .commands import split_command_args
from .replies import Replier
from .types import TelegramIncomingMessage

log = get_logger(__name__)

ExecutorFactory = Callable[[TelegramIncomingMessage], Any]


class PluginCommands:
    """Lists and dispatches command plugins."""

    def __init__(self, *, runtime: Any, replier: Replier, executor_for: ExecutorFactory) -> None:
        self.runtime = runtime
        self.replier = replier
        self.executor_for = executor_for
        self._ids: set[str] | None = None

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

    def describe(self, command_id: str) -> str | None:
        """A command's menu description (None when it cannot be loaded)."""
        try:
            backend = get_command(command_id, allowlist=self.runtime.allowlist, required=False)
        except Exception as exc:
            log.warning("telegram.commands.load_failed", command=command_id, error=str(exc))
            return None
        return getattr(backend, "description", None) if backend else None

    def shadowing_engines(self) -> set[str]:
        """Engine ids that win over a same-id command: not those whose plugin failed to
        load (in the reference a broken engine plugin is not an engine at all)."""
        try:
            failed = set(self.runtime.engine_ids_with_status("load_error"))
        except Exception:
            failed = set()
        return set(self.runtime.engine_ids) - failed

    async def is_plugin_command(self, name: str) -> bool:
        if name in self.shadowing_engines() or self.runtime.normalize_project_key(name):
            return False
        if self._ids is None or name not in self._ids:
            # unknown ids trigger a refresh (a plugin may have been installed meanwhile)
            self._ids = self.command_ids()
        return name in self._ids

    async def dispatch(self, msg: TelegramIncomingMessage, name: str, args_text: str) -> None:
        """Run ``/<name>``. As in the reference, what the plugin returns and every error
        reply (load failure with its reason, bad ``[plugins.<id>]``, exception) are sent as
        plain text: no Markdown is interpreted."""
        try:
            backend = get_command(name, allowlist=self.runtime.allowlist, required=True)
            if backend is None:
                raise ConfigError(f"Unknown command {name!r}.")
            plugin_config = self.runtime.plugin_config(name)
        except ConfigError as exc:
            log.warning("telegram.command.unavailable", command=name, error=str(exc))
            await self.replier.reply_plain(msg, f"error:\n{exc}")
            return
        reply_to = (
            MessageRef(channel_id=msg.chat_id, message_id=msg.reply_to_message_id)
            if msg.reply_to_message_id is not None
            else None
        )
        try:
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
                plugin_config=plugin_config,
                runtime=self.runtime,
                executor=self.executor_for(msg),
            )
            result = await backend.handle(ctx)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.command.failed", command=name, error=str(exc))
            await self.replier.reply_plain(msg, f"error:\n{str(exc) or type(exc).__name__}")
            return
        if result is None:
            return
        await self.replier.reply_plain(
            msg, result.text, notify=result.notify, reply_to=result.reply_to
        )


__all__ = ["PluginCommands"]
