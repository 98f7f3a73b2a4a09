"""EventFactory: event shapes and the one-resume-token-per-run rule."""

from __future__ import annotations

import pytest

from takopi.events import EventFactory
from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent


def test_started_sets_resume_and_builds_event() -> None:
    factory = EventFactory("codex")
    token = ResumeToken("codex", "t1")
    assert factory.resume is None
    event = factory.started(token, title="Codex", meta={"cwd": "/x"})
    assert event == StartedEvent(engine="codex", resume=token, title="Codex", meta={"cwd": "/x"})
    assert factory.resume == token


def test_started_token_is_positional_only() -> None:
    factory = EventFactory("codex")
    with pytest.raises(TypeError):
        factory.started(resume=ResumeToken("codex", "t1"))  # type: ignore[call-arg]


def test_started_with_a_different_token_raises() -> None:
    factory = EventFactory("codex")
    factory.started(ResumeToken("codex", "t1"))
    # The same token again is fine (engines may repeat their header).
    factory.started(ResumeToken("codex", "t1"))
    with pytest.raises(RuntimeError):
        factory.started(ResumeToken("codex", "t2"))
    assert factory.resume == ResumeToken("codex", "t1")


def test_started_rejects_other_engine_token() -> None:
    factory = EventFactory("codex")
    with pytest.raises(RuntimeError):
        factory.started(ResumeToken("claude", "t1"))


def test_completed_defaults_to_known_token() -> None:
    factory = EventFactory("pi")
    assert factory.completed_ok(answer="early").resume is None
    token = ResumeToken("pi", "s")
    factory.started(token)
    done = factory.completed_ok(answer="hi", usage={"tokens": 3})
    assert done == CompletedEvent(
        engine="pi", ok=True, answer="hi", resume=token, usage={"tokens": 3}
    )
    err = factory.completed_error(error="bad")
    assert (err.ok, err.answer, err.error, err.resume) == (False, "", "bad", token)
    generic = factory.completed(ok=False, answer="partial", error="x")
    assert generic.answer == "partial" and generic.resume == token


def test_completed_with_conflicting_token_raises() -> None:
    factory = EventFactory("pi")
    factory.started(ResumeToken("pi", "s"))
    with pytest.raises(RuntimeError):
        factory.completed_ok(answer="", resume=ResumeToken("pi", "other"))


def test_action_helpers_set_phase_ok_and_copy_detail() -> None:
    factory = EventFactory("claude")
    detail = {"k": 1}
    started = factory.action_started(action_id="a1", kind="command", title="ls", detail=detail)
    detail["k"] = 2  # the event must not alias the caller's dict
    assert isinstance(started, ActionEvent)
    assert (started.phase, started.ok, started.action.detail) == ("started", None, {"k": 1})
    updated = factory.action_updated(action_id="a1", kind="command", title="ls -l")
    assert (updated.phase, updated.action.title, updated.action.detail) == ("updated", "ls -l", {})
    completed = factory.action_completed(
        action_id="a1", kind="command", title="ls", ok=False, message="rc=1", level="warning"
    )
    assert (completed.phase, completed.ok, completed.message, completed.level) == (
        "completed",
        False,
        "rc=1",
        "warning",
    )
    generic = factory.action(phase="updated", action_id="n", kind="note", title="t", ok=True)
    assert generic.engine == "claude" and generic.action.id == "n" and generic.ok is True


def test_action_completed_requires_ok() -> None:
    factory = EventFactory("claude")
    with pytest.raises(TypeError):
        factory.action_completed(action_id="a", kind="tool", title="t")  # type: ignore[call-arg]
