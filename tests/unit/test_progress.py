"""ProgressTracker: collapsing by action id, turn actions, step counts, snapshots."""

from __future__ import annotations

from takopi.events import EventFactory
from takopi.model import Action, ActionEvent, CompletedEvent, ResumeToken, StartedEvent
from takopi.progress import ProgressTracker

F = EventFactory("codex")


def test_started_sets_resume_and_snapshot_formats_it() -> None:
    tracker = ProgressTracker(engine="codex")
    token = ResumeToken("codex", "abc")
    assert tracker.note_event(StartedEvent(engine="codex", resume=token))
    assert not tracker.note_event(StartedEvent(engine="codex", resume=token))
    state = tracker.snapshot(resume_formatter=lambda t: f"`codex resume {t.value}`")
    assert state.resume == token
    assert state.resume_line == "`codex resume abc`"
    assert tracker.snapshot().resume_line is None


def test_actions_collapse_by_id_and_keep_first_seen_order() -> None:
    tracker = ProgressTracker("codex")
    tracker.note_event(F.action_started(action_id="a", kind="command", title="ls"))
    tracker.note_event(F.action_started(action_id="b", kind="tool", title="read"))
    tracker.note_event(F.action_completed(action_id="a", kind="command", title="ls", ok=True))
    state = tracker.snapshot()
    assert state.action_count == 2
    assert [item.action.id for item in state.actions] == ["a", "b"]
    first = state.actions[0]
    assert first.completed and first.ok is True and first.display_phase == "completed"
    assert first.last_update > state.actions[1].last_update


def test_restart_of_an_open_action_shows_as_update() -> None:
    tracker = ProgressTracker("codex")
    tracker.note_event(F.action_started(action_id="a", kind="tool", title="t"))
    tracker.note_event(F.action_started(action_id="a", kind="tool", title="t again"))
    (item,) = tracker.snapshot().actions
    assert item.display_phase == "updated"
    assert item.action.title == "t again"
    tracker.note_event(F.action_completed(action_id="a", kind="tool", title="t", ok=False))
    tracker.note_event(F.action_started(action_id="a", kind="tool", title="t third"))
    (item,) = tracker.snapshot().actions
    assert item.display_phase == "started"  # completed actions are not "re-opened"
    assert tracker.snapshot().action_count == 1


def test_turn_actions_and_empty_ids_are_ignored() -> None:
    tracker = ProgressTracker("codex")
    turn = ActionEvent(
        engine="codex", action=Action(id="t", kind="turn", title="turn"), phase="started"
    )
    assert not tracker.note_event(turn)
    no_id = ActionEvent(
        engine="codex", action=Action(id="", kind="tool", title="x"), phase="started"
    )
    assert not tracker.note_event(no_id)
    state = tracker.snapshot()
    assert state.action_count == 0
    assert state.actions == ()


def test_completed_event_only_changes_state_with_a_new_token() -> None:
    tracker = ProgressTracker("codex")
    assert not tracker.note_event(CompletedEvent(engine="codex", ok=True, answer="x"))
    token = ResumeToken("codex", "late")
    assert tracker.note_event(CompletedEvent(engine="codex", ok=True, answer="x", resume=token))
    assert tracker.resume == token


def test_snapshot_carries_context_line_and_engine() -> None:
    tracker = ProgressTracker("pi")
    state = tracker.snapshot(context_line="`ctx: web`")
    assert state.engine == "pi"
    assert state.context_line == "`ctx: web`"
