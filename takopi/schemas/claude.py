"""Typed events of ``claude -p --output-format stream-json --verbose`` (claude 2.1.x).

A stream looks like ``system`` (subtype ``init``), then ``assistant`` / ``user`` messages (one
content block per line), then one ``result``. ``stream_event``, ``control_request`` /
``control_response`` and unknown types decode to their own classes and are ignored by the runner.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from takopi.schemas._decode import decode

# --- content blocks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Assistant text."""

    type: Literal["text"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """Extended thinking."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str = ""
    signature: str = ""


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """The model asks claude to run a tool."""

    type: Literal["tool_use", "server_tool_use"]
    id: str
    name: str
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The outcome of a tool call; ``content`` is a string or a list of content parts."""

    type: Literal["tool_result"]
    tool_use_id: str
    content: Any = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class UnknownBlock:
    """Any other content block (images, documents, …)."""

    type: str
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


ContentBlock: TypeAlias = TextBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock | UnknownBlock


@dataclass(frozen=True, slots=True)
class AssistantPayload:
    """The Anthropic message inside an ``assistant`` line."""

    content: list[ContentBlock] = field(default_factory=list)
    id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserPayload:
    """The message inside a ``user`` line: a plain string or content blocks."""

    content: str | list[ContentBlock] = ""
    role: str = "user"


# --- stream messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """``system`` lines; subtype ``init`` carries the session id and run metadata."""

    type: Literal["system"]
    subtype: str = ""
    session_id: str | None = None
    cwd: str | None = None
    model: str | None = None
    tools: list[Any] | None = None
    mcp_servers: list[Any] | None = None
    permission_mode: str | None = field(default=None, metadata={"json": "permissionMode"})
    api_key_source: str | None = field(default=None, metadata={"json": "apiKeySource"})
    output_style: str | None = None


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """One assistant content block (claude prints each block as its own line)."""

    type: Literal["assistant"]
    message: AssistantPayload
    parent_tool_use_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A user-role message: in ``-p`` mode these carry tool results."""

    type: Literal["user"]
    message: UserPayload
    parent_tool_use_id: str | None = None
    session_id: str | None = None
    tool_use_result: Any = None


@dataclass(frozen=True, slots=True)
class PermissionDenial:
    """A tool call claude refused to run for lack of permission."""

    tool_name: str
    tool_use_id: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """The final line of a run."""

    type: Literal["result"]
    subtype: str = ""
    is_error: bool = False
    result: str | None = None
    session_id: str | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    num_turns: int | None = None
    total_cost_usd: float | None = None
    usage: dict[str, Any] | None = None
    permission_denials: list[PermissionDenial] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Partial-message streaming events (only with ``--include-partial-messages``)."""

    type: Literal["stream_event"]
    event: Any = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """SDK control protocol messages; never produced in plain ``-p`` mode."""

    type: Literal["control_request", "control_response", "control_cancel_request"]
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """Any message type this schema does not know."""

    type: str
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


ClaudeMessage: TypeAlias = (
    SystemMessage
    | AssistantMessage
    | UserMessage
    | ResultMessage
    | StreamEvent
    | ControlMessage
    | UnknownMessage
)


def decode_event(data: Any) -> ClaudeMessage:
    """Decode one parsed JSONL line; raises ``SchemaError`` when it does not fit."""
    return typing.cast(ClaudeMessage, decode(ClaudeMessage, data))


__all__ = [
    "AssistantMessage",
    "AssistantPayload",
    "ClaudeMessage",
    "ContentBlock",
    "ControlMessage",
    "PermissionDenial",
    "ResultMessage",
    "StreamEvent",
    "SystemMessage",
    "TextBlock",
    "ThinkingBlock",
    "ToolResultBlock",
    "ToolUseBlock",
    "UnknownBlock",
    "UnknownMessage",
    "UserMessage",
    "UserPayload",
    "decode_event",
]
