"""Progress tracking: folds a run's event stream into a renderable snapshot.

Actions are collapsed by id (a later event for the same id updates it in place, keeping its
first-seen position); ``turn`` actions are ignored; the step count is the number of distinct
action ids seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from takopi.model import (
    Action,
    ActionEvent,
    ActionPhase,
    CompletedEvent,
    EngineId,
    ResumeToken,
    StartedEvent,
    TakopiEvent,
)


@dataclass(frozen=True, slots=True)
class ActionState:
    """The latest known state of one action.

    ``display_phase`` is what the renderer shows: ``updated`` when an action that is still open
    got another ``started``/``updated`` event.
    """

    action: Action
    phase: ActionPhase
    ok: bool | None
    display_phase: ActionPhase
    completed: bool
    first_seen: int
    last_update: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressState:
    """An immutable snapshot for presenters."""

    engine: EngineId
    action_count: int
    actions: tuple[ActionState, ...]
    resume: ResumeToken | None
    resume_line: str | None
    context_line: str | None


class ProgressTracker:
    """Accumulates events of one run (see :meth:`note_event` and :meth:`snapshot`)."""

    def __init__(self, engine: EngineId) -> None:
        self.engine: EngineId = engine
        self.resume: ResumeToken | None = None
        self.action_count = 0
        self._actions: dict[str, ActionState] = {}
        self._seq = 0

    def note_event(self, event: TakopiEvent) -> bool:
        """Fold ``event`` in; returns True when the snapshot may have changed."""
        if isinstance(event, StartedEvent):
            changed = self.resume != event.resume
            self.resume = event.resume
            return changed
        if isinstance(event, CompletedEvent):
            if event.resume is not None and event.resume != self.resume:
                self.resume = event.resume
                return True
            return False
        if isinstance(event, ActionEvent):
            return self._note_action(event)
        return False

    def _note_action(self, event: ActionEvent) -> bool:
        action = event.action
        if action.kind == "turn":
            return False
        action_id = str(action.id) if action.id is not None else ""
        if not action_id:
            return False
        existing = self._actions.get(action_id)
        completed = event.phase == "completed"
        reopened = event.phase == "started" and existing is not None and not existing.completed
        if completed:
            display_phase: ActionPhase = "completed"
        elif event.phase == "updated" or reopened:
            display_phase = "updated"
        else:
            display_phase = "started"
        self._seq += 1
        if existing is None:
            self.action_count += 1
            first_seen = self._seq
        else:
            first_seen = existing.first_seen
        self._actions[action_id] = ActionState(
            action=action,
            phase=event.phase,
            ok=event.ok,
            display_phase=display_phase,
            completed=completed,
            first_seen=first_seen,
            last_update=self._seq,
            message=event.message,
        )
        return True

    def set_resume(self, resume: ResumeToken | None) -> None:
        """Record a resume token learnt outside the event stream."""
        if resume is not None:
            self.resume = resume

    def snapshot(
        self,
        *,
        resume_formatter: Callable[[ResumeToken], str] | None = None,
        context_line: str | None = None,
    ) -> ProgressState:
        """The current state; ``resume_line`` is formatted when both token and formatter exist."""
        resume_line: str | None = None
        if self.resume is not None and resume_formatter is not None:
            resume_line = resume_formatter(self.resume) or None
        actions = tuple(sorted(self._actions.values(), key=lambda state: state.first_seen))
        return ProgressState(
            engine=self.engine,
            action_count=self.action_count,
            actions=actions,
            resume=self.resume,
            resume_line=resume_line,
            context_line=context_line,
        )


__all__ = ["ActionState", "ProgressState", "ProgressTracker"]
