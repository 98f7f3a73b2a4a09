"""The runner contract (one started, completed last, stable ids, order) and base classes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from takopi.model import Action, ActionEvent, CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.runner import (
    BaseRunner,
    JsonlRunState,
    JsonlSubprocessRunner,
    ResumeTokenMixin,
    Runner,
)
from takopi.runners.mock import Emit, MockRunner, Raise, Return, ScriptRunner

from .conftest import ScriptCliRunner

MakeRunner = Callable[..., ScriptCliRunner]

PRELUDE = """
import json, sys
def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
"""


def assert_contract(events: list[TakopiEvent]) -> tuple[StartedEvent, CompletedEvent]:
    started = [e for e in events if isinstance(e, StartedEvent)]
    completed = [e for e in events if isinstance(e, CompletedEvent)]
    assert len(started) == 1, events
    assert len(completed) == 1, events
    assert events[-1] is completed[0]
    assert completed[0].resume == started[0].resume
    return started[0], completed[0]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_jsonl_runner_contract_new_and_resumed(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
session = sys.argv[1] or "fresh-1"
emit({"type": "action", "id": "pre", "kind": "note", "title": "warming up", "phase": "completed", "ok": True})
emit({"type": "started", "session": session})
for i in range(3):
    emit({"type": "action", "id": f"cmd{i}", "kind": "command", "title": f"step {i}"})
    emit({"type": "action", "id": f"cmd{i}", "kind": "command", "title": f"step {i}", "phase": "completed", "ok": True})
emit({"type": "completed", "answer": "all done"})
"""
    )
    events = [e async for e in runner.run("go", None)]
    started, completed = assert_contract(events)
    assert started.resume == ResumeToken("scripted", "fresh-1")
    assert completed.answer == "all done" and completed.ok
    actions = [e for e in events if isinstance(e, ActionEvent)]
    # Order is kept, and started/completed phases of one action share its id.
    assert [(a.action.id, a.phase) for a in actions] == [
        ("pre", "completed"),
        ("cmd0", "started"),
        ("cmd0", "completed"),
        ("cmd1", "started"),
        ("cmd1", "completed"),
        ("cmd2", "started"),
        ("cmd2", "completed"),
    ]
    # An action may precede started.
    assert isinstance(events[0], ActionEvent)

    resumed = [e async for e in runner.run("again", started.resume)]
    started2, completed2 = assert_contract(resumed)
    assert started2.resume == started.resume == completed2.resume


@pytest.mark.anyio
async def test_mock_runners_follow_the_contract() -> None:
    action = ActionEvent(
        engine="codex",
        action=Action(id="a", kind="tool", title="t"),
        phase="started",
    )
    mock = MockRunner(events=[action], answer="ok", resume_value="m1")
    events = [e async for e in mock.run("p", None)]
    started, completed = assert_contract(events)
    assert events[1] == action
    assert started.resume == ResumeToken("codex", "m1") and completed.answer == "ok"

    script = ScriptRunner([Emit(action), Return(answer="r")], engine="claude")
    token = ResumeToken("claude", "given")
    events = [e async for e in script.run("p", token)]
    started, completed = assert_contract(events)
    assert started.resume == token and completed.answer == "r"
    assert [(c.prompt, c.resume) for c in script.calls] == [("p", token)]

    boom = ScriptRunner([Raise(ValueError("scripted failure"))])
    with pytest.raises(ValueError, match="scripted failure"):
        [e async for e in boom.run("p", None)]


def test_mock_resume_codec() -> None:
    runner = ScriptRunner(engine="mock")
    token = ResumeToken("mock", "abc")
    assert runner.format_resume(token) == "`mock resume abc`"
    assert runner.extract_resume("hello\n`mock resume one`\nmock resume two\n") == ResumeToken(
        "mock", "two"
    )
    assert runner.is_resume_line("  `mock resume abc`  ")
    assert not runner.is_resume_line("codex resume abc")
    with pytest.raises(RuntimeError):
        runner.format_resume(ResumeToken("codex", "abc"))


class _Codec(ResumeTokenMixin):
    engine = "codex"
    resume_re = re.compile(r"(?im)^\s*`?codex\s+resume\s+(?P<token>[^`\s]+)`?\s*$")


def test_resume_token_mixin_last_match_wins_and_rejects_other_engines() -> None:
    codec = _Codec()
    text = "codex resume first\nsome text\n`codex resume second`\ntrailing"
    assert codec.extract_resume(text) == ResumeToken("codex", "second")
    assert codec.extract_resume("nothing here") is None
    assert codec.extract_resume(None) is None  # type: ignore[arg-type]
    assert codec.is_resume_line("`codex resume x`")
    assert not codec.is_resume_line("please codex resume x")
    assert codec.format_resume(ResumeToken("codex", "t")) == "`codex resume t`"
    with pytest.raises(RuntimeError):
        codec.format_resume(ResumeToken("claude", "t"))


class _OnlyRunImpl(ResumeTokenMixin, BaseRunner):
    engine = "dummy"
    resume_re = re.compile(r"(?im)^`?dummy resume (?P<token>\S+?)`?$")

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        token = resume or ResumeToken(self.engine, "tok")
        yield StartedEvent(engine=self.engine, resume=token)
        yield CompletedEvent(engine=self.engine, ok=True, answer=prompt.upper(), resume=token)


@pytest.mark.anyio
async def test_base_runner_subclass_with_only_run_impl() -> None:
    runner = _OnlyRunImpl()
    assert isinstance(runner, Runner)
    events = [e async for e in runner.run("abc", None)]
    _, completed = assert_contract(events)
    assert completed.answer == "ABC"
    assert runner.session_locks is not None  # created lazily on the instance
    assert _OnlyRunImpl.session_locks is None  # the class default is untouched


@dataclass(slots=True)
class _SlottedState(JsonlRunState):
    extra: list[str] | None = None


@dataclass(slots=True)
class _SlottedRunner(JsonlSubprocessRunner):
    engine: str = "slotted"
    model: str | None = None

    def command(self) -> str:
        return "true"

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        return []

    def translate(
        self, data: Any, *, state: Any, resume: ResumeToken | None, found_session: Any
    ) -> list[TakopiEvent]:
        return []


def test_slotted_dataclass_subclasses_work() -> None:
    runner = _SlottedRunner(model="m")
    runner.session_locks = None  # plugins do this in __post_init__/__init__
    assert runner.lock_for(ResumeToken("slotted", "x")) is runner.lock_for(
        ResumeToken("slotted", "x")
    )
    state = _SlottedState(extra=["a"])
    state.note_seq += 1
    assert (state.note_seq, state.extra) == (1, ["a"])
    assert JsonlRunState().note_seq == 0
    note = runner.note_event("hello", state=state)
    assert note.action.kind == "note" and state.note_seq == 2
