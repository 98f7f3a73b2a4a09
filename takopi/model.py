"""Core event model shared by runners, the bridge and the wire codec.

These are the exact shapes of the reference API (`takopi.model`): frozen, slotted dataclasses
that plugins construct by keyword and compare with ``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

EngineId: TypeAlias = str

ActionKind: TypeAlias = Literal[
    "command",
    "tool",
    "file_change",
    "web_search",
    "subagent",
    "note",
    "turn",
    "warning",
    "telemetry",
]
ActionPhase: TypeAlias = Literal["started", "updated", "completed"]
ActionLevel: TypeAlias = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class ResumeToken:
    """An engine's session handle: ``value`` is what the engine CLI resumes by."""

    engine: EngineId
    value: str


@dataclass(frozen=True, slots=True)
class Action:
    """One unit of visible agent work (a command, a tool call, a file change, a note…)."""

    id: str
    kind: ActionKind
    title: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartedEvent:
    """The run's session is known: emitted exactly once per run."""

    engine: EngineId
    resume: ResumeToken
    title: str | None = None
    meta: dict[str, Any] | None = None
    type: Literal["started"] = field(default="started", init=False)


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """Progress of one action (started, updated, completed)."""

    engine: EngineId
    action: Action
    phase: ActionPhase
    ok: bool | None = None
    message: str | None = None
    level: ActionLevel | None = None
    type: Literal["action"] = field(default="action", init=False)


@dataclass(frozen=True, slots=True)
class CompletedEvent:
    """The run is over: always the last event, exactly once."""

    engine: EngineId
    ok: bool
    answer: str
    resume: ResumeToken | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None
    type: Literal["completed"] = field(default="completed", init=False)


TakopiEvent: TypeAlias = StartedEvent | ActionEvent | CompletedEvent

__all__ = [
    "Action",
    "ActionEvent",
    "ActionKind",
    "ActionLevel",
    "ActionPhase",
    "CompletedEvent",
    "EngineId",
    "ResumeToken",
    "StartedEvent",
    "TakopiEvent",
]
