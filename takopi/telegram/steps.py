"""The routing steps of the chat loop for text, commands and prompts (see
:mod:`takopi.telegram.routing`; files, albums and voice notes: :mod:`.media_steps`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from takopi.logging import get_logger

from .background import Background
from .cancel import Canceller
from .dispatch import PluginCommands
from .prompts import PromptRunner
from .replies import Replier
from .routing import Route
from .scope import ChatScope
from .sessions import Sessions
from .trigger import TriggerGate
from .types import TelegramIncomingMessage

log = get_logger(__name__)


@dataclass
class ForwardStep:
    """Forwarded text messages join the pending prompt of their sender (never run alone)."""

    prompts: PromptRunner
    name: str = "forward"

    async def handle(self, route: Route) -> bool:
        msg = route.msg
        if not msg.is_forward or msg.has_document or msg.has_voice or msg.media_group_id:
            return False
        if not self.prompts.coalescer.attach_forward(msg):
            log.debug("update.ignored", reason="forward_without_prompt")
        return True


@dataclass
class ContextStep:
    """Works out the message's scope (chat, or managed forum topic)."""

    scope_of: Callable[[TelegramIncomingMessage], ChatScope]
    name: str = "context"

    async def handle(self, route: Route) -> bool:
        route.scope = self.scope_of(route.msg)
        return False


@dataclass
class CancelStep:
    """``/cancel``."""

    canceller: Canceller
    name: str = "cancel"

    async def handle(self, route: Route) -> bool:
        if route.command is None or route.command.name != "cancel":
            return False
        self.canceller.handle_command(route.msg)
        return True


@dataclass
class NewStep:
    """``/new``: forget the stored sessions of the topic or chat (and a pending prompt)."""

    sessions: Sessions
    prompts: PromptRunner
    replier: Replier
    background: Background
    name: str = "new"

    async def handle(self, route: Route) -> bool:
        if route.command is None or route.command.name != "new":
            return False
        key = self.sessions.key_for(route.msg, route.chat_scope)
        if key is None:
            return False  # no sessions kept here: /new reaches the agent as a prompt
        self.background.spawn(self._clear, route.msg, key)
        return True

    async def _clear(self, msg: TelegramIncomingMessage, key: str) -> None:
        self.prompts.coalescer.cancel(msg.chat_id, msg.thread_id, msg.sender_id)
        await self.sessions.clear(key)
        if key.startswith("topic:"):
            text = "cleared stored sessions for this topic."
        elif msg.is_private:
            text = "cleared stored sessions for this chat."
        else:
            text = "cleared stored sessions for you in this chat."
        await self.replier.reply(msg, text)


BuiltinHandler = Callable[[TelegramIncomingMessage, ChatScope, str], Awaitable[Any]]


@dataclass
class BuiltinStep:
    """``/agent``, ``/model``, ``/reasoning``, ``/trigger``, ``/ctx``, and ``/topic`` in
    chats with managed topics (elsewhere ``/topic`` is a prompt, as in the reference)."""

    handlers: dict[str, BuiltinHandler]
    background: Background
    topic_chat: Callable[[int], bool] = lambda _chat_id: False
    name: str = "builtins"

    async def handle(self, route: Route) -> bool:
        command = route.command
        handler = self.handlers.get(command.name) if command is not None else None
        if command is None or handler is None:
            return False
        if command.name == "topic" and not self.topic_chat(route.msg.chat_id):
            return False
        self.background.spawn(handler, route.msg, route.chat_scope, command.args_text)
        return True


@dataclass
class TriggerStep:
    """Stops messages that do not trigger a run in ``mentions`` mode."""

    gate: TriggerGate
    name: str = "trigger"

    async def handle(self, route: Route) -> bool:
        command = route.command.name if route.command is not None else None
        if await self.gate.triggered(route.msg, route.chat_scope, command):
            return False
        log.debug("update.ignored", reason="not_triggered", chat_id=route.msg.chat_id)
        return True


@dataclass
class PluginStep:
    """``/<id>`` of a command plugin."""

    plugins: PluginCommands
    background: Background
    name: str = "plugin"

    async def handle(self, route: Route) -> bool:
        command = route.command
        if command is None or not await self.plugins.is_plugin_command(command.name):
            return False
        self.background.spawn(self.plugins.dispatch, route.msg, command.name, command.args_text)
        return True


@dataclass
class PromptStep:
    """Everything else is a prompt (a reply to a running run follows that run)."""

    prompts: PromptRunner
    background: Background
    name: str = "prompt"

    async def handle(self, route: Route) -> bool:
        msg = route.msg
        if route.text != msg.text:
            msg = _with_text(msg, route.text)
        ref = self.prompts.running_ref(msg)
        if ref is not None:
            self.background.spawn(self.prompts.follow_up_running, msg, ref)
        else:
            self.prompts.submit(msg)
        return True


def _with_text(msg: TelegramIncomingMessage, text: str) -> TelegramIncomingMessage:
    from dataclasses import replace

    return replace(msg, text=text)


__all__ = [
    "BuiltinStep",
    "CancelStep",
    "ContextStep",
    "ForwardStep",
    "NewStep",
    "PluginStep",
    "PromptStep",
    "TriggerStep",
]
