"""Command plugin messages: the transport worker asks the supervisor to describe and run a
command; the supervisor starts the command's worker on first use and relays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from takopi.transport import MessageRef


@dataclass(frozen=True, slots=True)
class CommandDescription:
    """``command.describe``'s answer: ``error`` set when the command cannot run."""

    description: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the command can run."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    """One ``CommandContext`` on the wire (``command.handle`` / ``handle``). ``executor``
    travels by reference: calls on it run in the transport worker that dispatched it."""

    command: str
    text: str
    args_text: str
    args: tuple[str, ...]
    message: MessageRef
    executor: Any
    reply_to: MessageRef | None = None
    reply_text: str | None = None
    config_path: str | None = None
    plugin_config: dict[str, Any] = field(default_factory=dict)


__all__ = ["CommandDescription", "CommandInvocation"]
