"""Typed events of ``pi --print --mode json`` (pi-coding-agent 0.73.x).

A stream looks like the ``session`` header, ``agent_start``, then per turn ``turn_start``,
``message_start`` / ``message_update`` / ``message_end`` (user, assistant, toolResult messages),
``tool_execution_start`` / ``_update`` / ``_end``, ``turn_end``, and finally ``agent_end``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from takopi.schemas._decode import decode


@dataclass(frozen=True, slots=True)
class Message:
    """An agent message (role user / assistant / toolResult).

    ``content`` is a list of blocks (``text``, ``thinking``, ``toolCall``, ``image``) kept as
    plain mappings; :meth:`text` joins the text blocks.
    """

    role: str = ""
    content: str | list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = field(default=None, metadata={"json": "stopReason"})
    error_message: str | None = field(default=None, metadata={"json": "errorMessage"})
    usage: dict[str, Any] | None = None
    provider: str | None = None
    model: str | None = None

    def text(self) -> str:
        """The message's text blocks joined (thinking and tool calls excluded)."""
        if isinstance(self.content, str):
            return self.content
        parts = [
            block["text"]
            for block in self.content
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        return "".join(parts)

    def thinking(self) -> list[str]:
        """The non-empty ``thinking`` blocks, stripped."""
        if isinstance(self.content, str):
            return []
        return [
            block["thinking"].strip()
            for block in self.content
            if block.get("type") == "thinking"
            and isinstance(block.get("thinking"), str)
            and block["thinking"].strip()
        ]


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """First line: the session id (a UUIDv7) and its cwd."""

    type: Literal["session"]
    id: str | None = None
    cwd: str | None = None
    version: int | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """A message is complete."""

    type: Literal["message_end"]
    message: Message = field(default_factory=Message)


@dataclass(frozen=True, slots=True)
class ToolExecutionStart:
    """pi starts running a tool."""

    type: Literal["tool_execution_start"]
    tool_call_id: str = field(metadata={"json": "toolCallId"})
    tool_name: str = field(default="", metadata={"json": "toolName"})
    args: Any = None


@dataclass(frozen=True, slots=True)
class ToolExecutionEnd:
    """A tool finished."""

    type: Literal["tool_execution_end"]
    tool_call_id: str = field(metadata={"json": "toolCallId"})
    tool_name: str = field(default="", metadata={"json": "toolName"})
    result: Any = None
    is_error: bool = field(default=False, metadata={"json": "isError"})


@dataclass(frozen=True, slots=True)
class AgentEnd:
    """The run is over; ``messages`` is the conversation of this run."""

    type: Literal["agent_end"]
    messages: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """Events the runner does not translate (kept typed so they are not "unknown")."""

    type: Literal[
        "agent_start",
        "turn_start",
        "turn_end",
        "message_start",
        "message_update",
        "tool_execution_update",
        "auto_compaction_start",
        "auto_compaction_end",
        "auto_retry_start",
        "auto_retry_end",
    ]


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any event type this schema does not know."""

    type: str
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


PiEvent: TypeAlias = (
    SessionHeader
    | MessageEnd
    | ToolExecutionStart
    | ToolExecutionEnd
    | AgentEnd
    | IgnoredEvent
    | UnknownEvent
)


def decode_event(data: Any) -> PiEvent:
    """Decode one parsed JSONL line; raises ``SchemaError`` when it does not fit."""
    return typing.cast(PiEvent, decode(PiEvent, data))


__all__ = [
    "AgentEnd",
    "IgnoredEvent",
    "Message",
    "MessageEnd",
    "PiEvent",
    "SessionHeader",
    "ToolExecutionEnd",
    "ToolExecutionStart",
    "UnknownEvent",
    "decode_event",
]
