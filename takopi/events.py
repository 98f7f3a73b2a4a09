"""`EventFactory`: builds a run's takopi events and keeps its resume token consistent."""

from __future__ import annotations

from typing import Any

from takopi.model import (
    Action,
    ActionEvent,
    ActionKind,
    ActionLevel,
    ActionPhase,
    CompletedEvent,
    EngineId,
    ResumeToken,
    StartedEvent,
)


class EventFactory:
    """Creates events for one engine run.

    A run has at most one resume token: the first ``started`` fixes it, a later ``started``
    with a different token raises ``RuntimeError``, and ``completed*`` default their
    ``resume`` to it.
    """

    __slots__ = ("_resume", "engine")

    def __init__(self, engine: EngineId) -> None:
        self.engine: EngineId = engine
        self._resume: ResumeToken | None = None

    @property
    def resume(self) -> ResumeToken | None:
        """The run's resume token once ``started`` has been created (else ``None``)."""
        return self._resume

    def _check_token(self, token: ResumeToken) -> None:
        if token.engine != self.engine:
            raise RuntimeError(f"resume token is for engine {token.engine!r}, not {self.engine!r}")
        if self._resume is not None and token != self._resume:
            raise RuntimeError(
                f"resume token changed during the run: {self._resume.value!r} -> {token.value!r}"
            )

    def started(
        self,
        token: ResumeToken,
        /,
        *,
        title: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> StartedEvent:
        """The session is known. ``token`` is positional-only."""
        self._check_token(token)
        self._resume = token
        return StartedEvent(engine=self.engine, resume=token, title=title, meta=meta)

    def action(
        self,
        *,
        phase: ActionPhase,
        action_id: str,
        kind: ActionKind,
        title: str,
        detail: dict[str, Any] | None = None,
        ok: bool | None = None,
        message: str | None = None,
        level: ActionLevel | None = None,
    ) -> ActionEvent:
        """An action event in any phase."""
        action = Action(id=action_id, kind=kind, title=title, detail=dict(detail or {}))
        return ActionEvent(
            engine=self.engine,
            action=action,
            phase=phase,
            ok=ok,
            message=message,
            level=level,
        )

    def action_started(
        self,
        *,
        action_id: str,
        kind: ActionKind,
        title: str,
        detail: dict[str, Any] | None = None,
        message: str | None = None,
        level: ActionLevel | None = None,
    ) -> ActionEvent:
        """An action began."""
        return self.action(
            phase="started",
            action_id=action_id,
            kind=kind,
            title=title,
            detail=detail,
            message=message,
            level=level,
        )

    def action_updated(
        self,
        *,
        action_id: str,
        kind: ActionKind,
        title: str,
        detail: dict[str, Any] | None = None,
        message: str | None = None,
        level: ActionLevel | None = None,
    ) -> ActionEvent:
        """An action in progress changed."""
        return self.action(
            phase="updated",
            action_id=action_id,
            kind=kind,
            title=title,
            detail=detail,
            message=message,
            level=level,
        )

    def action_completed(
        self,
        *,
        action_id: str,
        kind: ActionKind,
        title: str,
        ok: bool,
        detail: dict[str, Any] | None = None,
        message: str | None = None,
        level: ActionLevel | None = None,
    ) -> ActionEvent:
        """An action finished (``ok`` says whether it succeeded)."""
        return self.action(
            phase="completed",
            action_id=action_id,
            kind=kind,
            title=title,
            detail=detail,
            ok=ok,
            message=message,
            level=level,
        )

    def completed(
        self,
        *,
        ok: bool,
        answer: str,
        resume: ResumeToken | None = None,
        error: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> CompletedEvent:
        """The run is over. ``resume`` defaults to the token from ``started``."""
        if resume is not None:
            self._check_token(resume)
        else:
            resume = self._resume
        return CompletedEvent(
            engine=self.engine,
            ok=ok,
            answer=answer,
            resume=resume,
            error=error,
            usage=usage,
        )

    def completed_ok(
        self,
        *,
        answer: str,
        resume: ResumeToken | None = None,
        usage: dict[str, Any] | None = None,
    ) -> CompletedEvent:
        """A successful completion."""
        return self.completed(ok=True, answer=answer, resume=resume, usage=usage)

    def completed_error(
        self,
        *,
        error: str,
        answer: str = "",
        resume: ResumeToken | None = None,
        usage: dict[str, Any] | None = None,
    ) -> CompletedEvent:
        """A failed completion carrying ``error`` (and any partial ``answer``)."""
        return self.completed(ok=False, answer=answer, resume=resume, usage=usage, error=error)


__all__ = ["EventFactory"]
