"""Typed events of ``codex exec --json`` (checked against codex 0.169.0 streams).

A stream looks like ``thread.started``, ``turn.started``, ``item.started`` /
``item.updated`` / ``item.completed`` (each carrying one thread item), then ``turn.completed``
or ``turn.failed``; ``error`` lines report stream problems (reconnects, warnings).
Unknown event types decode as :class:`UnknownEvent`, unknown item types as :class:`UnknownItem`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from takopi.schemas._decode import decode

# --- thread items -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentMessageItem:
    """Assistant text; ``phase`` is ``commentary`` / ``final_answer`` on newer models."""

    id: str
    type: Literal["agent_message"]
    text: str = ""
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    """A reasoning summary."""

    id: str
    type: Literal["reasoning"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class CommandExecutionItem:
    """A shell command run by codex; ``status`` is in_progress/completed/failed/declined."""

    id: str
    type: Literal["command_execution"]
    command: str = ""
    aggregated_output: str = ""
    exit_code: int | None = None
    status: str = "in_progress"


@dataclass(frozen=True, slots=True)
class FileUpdateChange:
    """One path touched by a patch; ``kind`` is add/delete/update."""

    path: str
    kind: str = "update"


@dataclass(frozen=True, slots=True)
class FileChangeItem:
    """A patch applied (or not) by codex."""

    id: str
    type: Literal["file_change"]
    changes: list[FileUpdateChange] = field(default_factory=list)
    status: str = "completed"


@dataclass(frozen=True, slots=True)
class McpToolCallError:
    """Error of an MCP tool call."""

    message: str = ""


@dataclass(frozen=True, slots=True)
class McpToolCallResult:
    """Result of an MCP tool call (content blocks and optional structured content)."""

    content: list[Any] = field(default_factory=list)
    structured_content: Any = None


@dataclass(frozen=True, slots=True)
class McpToolCallItem:
    """A call to a tool of an MCP server."""

    id: str
    type: Literal["mcp_tool_call"]
    server: str = ""
    tool: str = ""
    arguments: Any = None
    result: McpToolCallResult | None = None
    error: McpToolCallError | None = None
    status: str = "in_progress"


@dataclass(frozen=True, slots=True)
class WebSearchItem:
    """A web search."""

    id: str
    type: Literal["web_search"]
    query: str = ""


@dataclass(frozen=True, slots=True)
class TodoEntry:
    """One entry of codex's plan."""

    text: str = ""
    completed: bool = False


@dataclass(frozen=True, slots=True)
class TodoListItem:
    """codex's running plan."""

    id: str
    type: Literal["todo_list"]
    items: list[TodoEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """A non-fatal error / warning reported as an item."""

    id: str
    type: Literal["error"]
    message: str = ""


@dataclass(frozen=True, slots=True)
class UnknownItem:
    """Any item type this schema does not know (e.g. ``collab_tool_call``)."""

    type: str
    id: str = ""
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


ThreadItem: TypeAlias = (
    AgentMessageItem
    | ReasoningItem
    | CommandExecutionItem
    | FileChangeItem
    | McpToolCallItem
    | WebSearchItem
    | TodoListItem
    | ErrorItem
    | UnknownItem
)

# --- stream events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadStarted:
    """First line: the thread (session) id."""

    type: Literal["thread.started"]
    thread_id: str


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """A model turn began."""

    type: Literal["turn.started"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of a turn."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    """The turn finished successfully."""

    type: Literal["turn.completed"]
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class TurnError:
    """Why a turn failed."""

    message: str = ""


@dataclass(frozen=True, slots=True)
class TurnFailed:
    """The turn failed."""

    type: Literal["turn.failed"]
    error: TurnError = field(default_factory=TurnError)


@dataclass(frozen=True, slots=True)
class ItemStarted:
    """An item began."""

    type: Literal["item.started"]
    item: ThreadItem


@dataclass(frozen=True, slots=True)
class ItemUpdated:
    """An item changed."""

    type: Literal["item.updated"]
    item: ThreadItem


@dataclass(frozen=True, slots=True)
class ItemCompleted:
    """An item finished."""

    type: Literal["item.completed"]
    item: ThreadItem


@dataclass(frozen=True, slots=True)
class StreamError:
    """A stream-level error line (reconnect notices, fatal errors before ``turn.failed``)."""

    type: Literal["error"]
    message: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any event type this schema does not know."""

    type: str
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


CodexEvent: TypeAlias = (
    ThreadStarted
    | TurnStarted
    | TurnCompleted
    | TurnFailed
    | ItemStarted
    | ItemUpdated
    | ItemCompleted
    | StreamError
    | UnknownEvent
)
ItemEvent: TypeAlias = ItemStarted | ItemUpdated | ItemCompleted


def decode_event(data: Any) -> CodexEvent:
    """Decode one parsed JSONL line; raises ``SchemaError`` when it does not fit."""
    return typing.cast(CodexEvent, decode(CodexEvent, data))


__all__ = [
    "AgentMessageItem",
    "CodexEvent",
    "CommandExecutionItem",
    "ErrorItem",
    "FileChangeItem",
    "FileUpdateChange",
    "ItemCompleted",
    "ItemEvent",
    "ItemStarted",
    "ItemUpdated",
    "McpToolCallError",
    "McpToolCallItem",
    "McpToolCallResult",
    "ReasoningItem",
    "StreamError",
    "ThreadItem",
    "ThreadStarted",
    "TodoEntry",
    "TodoListItem",
    "TurnCompleted",
    "TurnFailed",
    "TurnStarted",
    "UnknownEvent",
    "UnknownItem",
    "Usage",
    "decode_event",
]
