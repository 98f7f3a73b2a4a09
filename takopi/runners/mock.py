"""Scripted in-process runners for tests: no subprocess, fully deterministic.

``ScriptRunner`` plays a list of steps after its ``started`` event::

    runner = ScriptRunner(
        [Emit(action_event), Wait(gate), Sleep(0.01), Return(answer="done")],
        engine="codex",
    )

Steps: :class:`Emit` (yield an event, optionally advancing a fake clock first),
:class:`Advance` (move the fake clock), :class:`Sleep`, :class:`Wait` (an ``anyio.Event``),
:class:`Return` (complete ok with an answer) and :class:`Raise` (raise an exception).
Resume lines use the codex-like form `` `<engine> resume <token>` `` (regex R-mock).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import anyio

from takopi.events import EventFactory
from takopi.model import (
    ActionEvent,
    CompletedEvent,
    EngineId,
    ResumeToken,
    StartedEvent,
    TakopiEvent,
)
from takopi.runner import BaseRunner, ResumeTokenMixin


def mock_resume_re(engine: EngineId) -> re.Pattern[str]:
    """The resume-line regex of a mock engine (R-mock)."""
    return re.compile(rf"(?im)^\s*`?{re.escape(engine)}\s+resume\s+(?P<token>[^`\s]+)`?\s*$")


@dataclass(frozen=True, slots=True)
class Emit:
    """Yield ``event``; with ``at`` set, advance the fake clock to ``at`` first."""

    event: TakopiEvent
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Advance:
    """Move the runner's fake clock to ``now`` (calls the runner's ``advance`` callback)."""

    now: float


@dataclass(frozen=True, slots=True)
class Sleep:
    """``await anyio.sleep(seconds)``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Block until ``event`` is set."""

    event: anyio.Event


@dataclass(frozen=True, slots=True)
class Return:
    """Finish the run successfully with ``answer``."""

    answer: str = ""
    usage: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise ``error`` from the run."""

    error: BaseException


ScriptStep: TypeAlias = Emit | Advance | Sleep | Wait | Return | Raise

_session_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class RunCall:
    """One recorded ``run()`` call."""

    prompt: str
    resume: ResumeToken | None


@dataclass(eq=False)
class ScriptRunner(ResumeTokenMixin, BaseRunner):
    """A runner that plays ``script`` after emitting ``started``.

    ``resume_value`` names the session of new runs (default: ``<engine>-session-<n>``);
    resume runs keep the requested token. Without a :class:`Return` step the run completes
    ok with an empty answer. Every call is recorded in ``calls``.
    """

    script: Sequence[ScriptStep] = ()
    engine: EngineId = "codex"
    resume_value: str | None = None
    title: str | None = "Mock"
    advance: Callable[[float], None] | None = None
    emit_started: bool = True
    calls: list[RunCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.resume_re = mock_resume_re(self.engine)

    def _token_for(self, resume: ResumeToken | None) -> ResumeToken:
        if resume is not None:
            return resume
        value = self.resume_value or f"{self.engine}-session-{next(_session_counter)}"
        return ResumeToken(engine=self.engine, value=value)

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """Play the script."""
        self.calls.append(RunCall(prompt=prompt, resume=resume))
        factory = EventFactory(self.engine)
        token = self._token_for(resume)
        if self.emit_started:
            yield factory.started(token, title=self.title)
        for step in self.script:
            if isinstance(step, Emit):
                if step.at is not None and self.advance is not None:
                    self.advance(step.at)
                yield _rebind(step.event, token if self.emit_started else None)
                if isinstance(step.event, CompletedEvent):
                    return
            elif isinstance(step, Advance):
                if self.advance is not None:
                    self.advance(step.now)
            elif isinstance(step, Sleep):
                await anyio.sleep(step.seconds)
            elif isinstance(step, Wait):
                await step.event.wait()
            elif isinstance(step, Return):
                yield factory.completed_ok(
                    answer=step.answer,
                    resume=token if self.emit_started else None,
                    usage=step.usage,
                )
                return
            elif isinstance(step, Raise):
                raise step.error
        yield factory.completed_ok(answer="", resume=token if self.emit_started else None)


def _rebind(event: TakopiEvent, token: ResumeToken | None) -> TakopiEvent:
    """Scripted ``completed`` events without a resume get the run's token."""
    if isinstance(event, CompletedEvent) and event.resume is None and token is not None:
        return CompletedEvent(
            engine=event.engine,
            ok=event.ok,
            answer=event.answer,
            resume=token,
            error=event.error,
            usage=event.usage,
        )
    return event


class MockRunner(ScriptRunner):
    """``started``, then ``events`` in order, then ``completed`` ok with ``answer``."""

    def __init__(
        self,
        *,
        events: Iterable[ActionEvent | StartedEvent | CompletedEvent] = (),
        answer: str = "",
        engine: EngineId = "codex",
        resume_value: str | None = None,
        title: str | None = "Mock",
        advance: Callable[[float], None] | None = None,
    ) -> None:
        steps: list[ScriptStep] = [Emit(event) for event in events]
        steps.append(Return(answer=answer))
        super().__init__(
            script=steps,
            engine=engine,
            resume_value=resume_value,
            title=title,
            advance=advance,
        )


__all__ = [
    "Advance",
    "Emit",
    "MockRunner",
    "Raise",
    "Return",
    "RunCall",
    "ScriptRunner",
    "ScriptStep",
    "Sleep",
    "Wait",
    "mock_resume_re",
]
