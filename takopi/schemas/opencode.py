"""Typed events of ``opencode run --format json`` (opencode 1.x).

Every line carries ``sessionID``. A stream looks like ``step_start``, ``text`` / ``tool_use``
(/ ``reasoning`` with ``--thinking``), ``step_finish`` (reason ``tool-calls`` or ``stop``),
repeated per step; failures arrive as ``error``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from takopi.schemas._decode import decode

_SID = {"json": "sessionID"}


@dataclass(frozen=True, slots=True)
class ToolState:
    """State of a tool part: status pending/running/completed/error."""

    status: str = "pending"
    input: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    title: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolPart:
    """The ``part`` of a ``tool_use`` event."""

    id: str = ""
    call_id: str | None = field(default=None, metadata={"json": "callID"})
    tool: str = ""
    state: ToolState = field(default_factory=ToolState)


@dataclass(frozen=True, slots=True)
class TextPart:
    """The ``part`` of a ``text`` or ``reasoning`` event."""

    id: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class CacheTokens:
    """Prompt cache token counts."""

    read: int = 0
    write: int = 0


@dataclass(frozen=True, slots=True)
class StepTokens:
    """Token counts of one step."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cache: CacheTokens = field(default_factory=CacheTokens)


@dataclass(frozen=True, slots=True)
class StepFinishPart:
    """The ``part`` of a ``step_finish`` event."""

    id: str = ""
    reason: str | None = None
    cost: float | None = None
    tokens: StepTokens | None = None


@dataclass(frozen=True, slots=True)
class StepStart:
    """A model step began."""

    type: Literal["step_start"]
    session_id: str | None = field(default=None, metadata=_SID)
    part: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextEvent:
    """A finished text part of the answer."""

    type: Literal["text"]
    session_id: str | None = field(default=None, metadata=_SID)
    part: TextPart = field(default_factory=TextPart)


@dataclass(frozen=True, slots=True)
class ReasoningEvent:
    """A finished reasoning part (only printed with ``--thinking``)."""

    type: Literal["reasoning"]
    session_id: str | None = field(default=None, metadata=_SID)
    part: TextPart = field(default_factory=TextPart)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool part changed state."""

    type: Literal["tool_use"]
    session_id: str | None = field(default=None, metadata=_SID)
    part: ToolPart = field(default_factory=ToolPart)


@dataclass(frozen=True, slots=True)
class StepFinish:
    """A model step finished; reason ``stop`` ends the run, ``tool-calls`` continues."""

    type: Literal["step_finish"]
    session_id: str | None = field(default=None, metadata=_SID)
    part: StepFinishPart = field(default_factory=StepFinishPart)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A session error: ``error`` is ``{name, data: {message, …}}`` (shape varies)."""

    type: Literal["error"]
    session_id: str | None = field(default=None, metadata=_SID)
    error: Any = None
    message: Any = None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any event type this schema does not know."""

    type: str
    session_id: str | None = field(default=None, metadata=_SID)
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


OpencodeEvent: TypeAlias = (
    StepStart | TextEvent | ReasoningEvent | ToolUse | StepFinish | ErrorEvent | UnknownEvent
)


def decode_event(data: Any) -> OpencodeEvent:
    """Decode one parsed JSONL line; raises ``SchemaError`` when it does not fit."""
    return typing.cast(OpencodeEvent, decode(OpencodeEvent, data))


__all__ = [
    "CacheTokens",
    "ErrorEvent",
    "OpencodeEvent",
    "ReasoningEvent",
    "StepFinish",
    "StepFinishPart",
    "StepStart",
    "StepTokens",
    "TextEvent",
    "TextPart",
    "ToolPart",
    "ToolState",
    "ToolUse",
    "UnknownEvent",
    "decode_event",
]
