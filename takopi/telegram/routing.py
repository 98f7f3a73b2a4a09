"""Message routing: an ordered list of steps, each of which may handle a message (and stop
the chain) or let it continue.

The order follows the reference: forward ⇒ media group ⇒ context ⇒ cancel ⇒ new ⇒ builtins
⇒ trigger ⇒ voice ⇒ document ⇒ plugin ⇒ prompt. A step is any object with a ``name`` and an
``async handle(route) -> bool`` (True = handled, stop). Steps may also rewrite
``route.text`` for the steps after them (a transcribed voice note becomes the prompt text).
A step whose work is slow (a download, a transcription) does it in the background, stops the
chain, and hands the message on later with :meth:`MessageRouter.route_after`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from takopi.logging import get_logger

from .commands import ParsedCommand, parse_command
from .scope import ChatScope
from .types import TelegramIncomingMessage

log = get_logger(__name__)


@dataclass
class Route:
    """One message on its way through the steps."""

    msg: TelegramIncomingMessage
    text: str
    command: ParsedCommand | None = None
    scope: ChatScope | None = None
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def chat_scope(self) -> ChatScope:
        return self.scope or ChatScope(self.msg.chat_id, self.msg.thread_id)


class Step(Protocol):
    """A routing step."""

    name: str

    async def handle(self, route: Route) -> bool:
        """Handle ``route`` and return True to stop, or False to pass it on."""
        ...


class MessageRouter:
    """Runs a message through its steps in order."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps: list[Step] = list(steps)

    def _index(self, name: str) -> int:
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        raise KeyError(name)

    async def route(self, msg: TelegramIncomingMessage) -> str | None:
        """Route ``msg``; returns the name of the step that handled it (None: nobody)."""
        route = Route(msg=msg, text=msg.text, command=parse_command(msg.text))
        return await self._run(self.steps, route)

    async def route_after(self, name: str, route: Route) -> str | None:
        """Continue ``route`` with the steps after the one called ``name`` (a step that
        finished its work in the background hands the message on)."""
        return await self._run(self.steps[self._index(name) + 1 :], route)

    @staticmethod
    async def _run(steps: Sequence[Step], route: Route) -> str | None:
        for step in steps:
            if await step.handle(route):
                return step.name
        return None


__all__ = ["MessageRouter", "Route", "Step"]
