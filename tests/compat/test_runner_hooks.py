"""Hook dispatch details of ``JsonlSubprocessRunner`` that published engine plugins rely on.

takopi-engine-cursor's ``decode_jsonl`` returns ``None`` for PTY noise and overrides
``decode_error_events`` for real decode exceptions only; the reference runner sends a ``None``
decode straight to ``invalid_json_events`` without calling ``decode_error_events``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from takopi.api import CompletedEvent, EventFactory, JsonlSubprocessRunner, ResumeToken
from takopi.runner import JsonlRunState, ResumeTokenMixin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

SCRIPT = r"""
import json, sys
print("noise from a pty")
print('{"broken')
print(json.dumps({"type": "init", "session": "s1"}))
print(json.dumps({"type": "done", "answer": "ok"}))
"""


@dataclass(slots=True)
class HookState(JsonlRunState):
    factory: EventFactory = field(default_factory=lambda: EventFactory("hooky"))


@dataclass(slots=True)
class HookRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    """Plugin-style runner: slotted dataclass, `decode_jsonl` returning None for non-objects."""

    script: Path = Path()
    engine: str = "hooky"
    calls: list[tuple[str, str]] = field(default_factory=list)

    def command(self) -> str:
        return sys.executable

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        return [str(self.script)]

    def new_state(self, prompt: str, resume: ResumeToken | None) -> HookState:
        return HookState()

    def decode_jsonl(self, *, line: bytes) -> Any:
        if not line.startswith(b'{"'):
            return None
        import json

        return json.loads(line)

    def decode_error_events(
        self, *, raw: str, line: str, error: Exception, state: Any
    ) -> list[Any]:
        self.calls.append(("decode_error", line))
        return []

    def invalid_json_events(self, *, raw: str, line: str, state: Any) -> list[Any]:
        self.calls.append(("invalid_json", line))
        return []

    def translate(
        self,
        data: Any,
        *,
        state: HookState,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[Any]:
        if data["type"] == "init":
            return [state.factory.started(ResumeToken(engine="hooky", value=data["session"]))]
        return [state.factory.completed_ok(answer=data["answer"])]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_none_decode_goes_to_invalid_json_events_only(tmp_path: Path) -> None:
    script = tmp_path / "cli.py"
    script.write_text(SCRIPT)
    runner = HookRunner(script=script)
    events = [event async for event in runner.run("hi", None)]
    assert isinstance(events[-1], CompletedEvent) and events[-1].ok
    assert events[-1].resume == ResumeToken(engine="hooky", value="s1")
    assert runner.calls == [
        ("invalid_json", "noise from a pty"),
        ("decode_error", '{"broken'),
    ]
