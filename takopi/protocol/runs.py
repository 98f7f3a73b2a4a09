"""Run messages: a transport worker asks the supervisor for a run, the supervisor asks the
engine worker, and events stream back (plus one :class:`ResumeLine` before ``started``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from takopi.model import ResumeToken
    from takopi.transport import ChannelId, MessageId, ThreadId


@dataclass(frozen=True, slots=True)
class RunAddress:
    """Where a run's outcome goes if its consumer is lost (journaled with the run)."""

    channel_id: ChannelId | None = None
    message_id: MessageId | None = None
    thread_id: ThreadId | None = None
    progress_message_id: MessageId | None = None
    context_line: str | None = None


@dataclass(frozen=True, slots=True)
class StartRun:
    """transport worker → supervisor stream ``run``."""

    engine: str
    prompt: str
    resume: ResumeToken | None = None
    cwd: str | None = None
    model: str | None = None
    reasoning: str | None = None
    run_id: str | None = None
    address: RunAddress | None = None


@dataclass(frozen=True, slots=True)
class EngineRun:
    """supervisor → engine worker stream ``run``: the run's cwd and overrides are set in the
    plugin-visible contextvars while the runner runs."""

    prompt: str
    resume: ResumeToken | None = None
    cwd: str | None = None
    model: str | None = None
    reasoning: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResumeLine:
    """Stream item sent before ``started``: the formatted resume line of ``token``."""

    token: str
    line: str


@dataclass(frozen=True, slots=True)
class RunnerChoice:
    """``runtime.resolve_runner``'s answer (the runner itself stays in the engine worker)."""

    engine: str
    available: bool
    issue: str | None = None


ALREADY_ANSWERED = "already_answered"
"""``run.intake``'s answer (``note_incoming``'s result) when the message was answered already
(a run began for it, or an ``interrupted`` reply is owed or sent): the chat service offered
it again because its confirmation was lost. The transport ignores it (no run, no reply). Any
other answer (``True``, ``None`` from older runtimes) means a new message."""


__all__ = [
    "ALREADY_ANSWERED",
    "EngineRun",
    "ResumeLine",
    "RunAddress",
    "RunnerChoice",
    "StartRun",
]
