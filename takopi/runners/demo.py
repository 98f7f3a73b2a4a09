"""The built-in ``demo`` engine: a clearly labelled stand-in used only when no agent CLI
(codex, claude, opencode, pi) is on PATH, so a newcomer can watch the whole pipeline work.

It drives :mod:`takopi.runners.demo_agent` — a scripted JSONL-printing subprocess — through the
same :class:`~takopi.runner.JsonlSubprocessRunner` machinery as the real engines (process group,
streaming, cancellation, resume). Config: ``[demo] delay = 0.4`` (seconds between steps).
Resume line: `` `demo resume <id>` ``.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend, EngineConfig
from takopi.config import ConfigError
from takopi.events import EventFactory
from takopi.model import ActionKind, ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState, JsonlSubprocessRunner, ResumeTokenMixin
from takopi.runners._common import INLINE_SPACE, resume_line_re

ENGINE = "demo"
REAL_ENGINE_CLIS = ("codex", "claude", "opencode", "pi")
_RESUME_RE = resume_line_re(rf"demo{INLINE_SPACE}+resume{INLINE_SPACE}+(?P<token>[^`\s]+)")


def real_engine_on_path() -> bool:
    """True when any real agent CLI is installed; the demo engine then stays out of the way."""
    return any(shutil.which(cli) for cli in REAL_ENGINE_CLIS)


@dataclass(slots=True)
class DemoRunState(JsonlRunState):
    """Per-run state: the event factory and the answer text."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(ENGINE))
    answer: str = ""


@dataclass(slots=True)
class DemoRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    """Runs ``python -m takopi.runners.demo_agent`` and translates its events."""

    delay: float = 0.4

    engine = ENGINE
    resume_re = _RESUME_RE

    def command(self) -> str:
        return sys.executable

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        args = ["-P", "-m", "takopi.runners.demo_agent", "--delay", str(self.delay)]
        if resume is not None:
            args += ["--resume", resume.value]
        return args

    def new_state(self, prompt: str, resume: ResumeToken | None) -> DemoRunState:
        return DemoRunState()

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        factory: EventFactory = state.factory
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "session":
            token = ResumeToken(engine=ENGINE, value=str(data["id"]))
            return [factory.started(token, title="demo engine (no agent CLI on PATH)")]
        if kind == "step":
            step_kind: ActionKind = "command" if data.get("kind") == "command" else "note"
            if data.get("status") == "done":
                exit_code = data.get("exit_code")
                return [
                    factory.action_completed(
                        action_id=str(data["id"]),
                        kind=step_kind,
                        title=str(data["title"]),
                        ok=exit_code in (None, 0),
                        detail={"exit_code": exit_code} if exit_code is not None else None,
                    )
                ]
            return [
                factory.action_started(
                    action_id=str(data["id"]), kind=step_kind, title=str(data["title"])
                )
            ]
        if kind == "answer":
            state.answer = str(data.get("text", ""))
            return []
        if kind == "end":
            if data.get("ok"):
                return [factory.completed_ok(answer=state.answer)]
            return [factory.completed_error(error=str(data.get("error") or "demo run failed"))]
        return []


def build_runner(config: EngineConfig, config_path: Path) -> DemoRunner:
    """Build the demo runner from ``[demo]``; ``delay`` must be a non-negative number."""
    delay = config.get("delay", 0.4)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ConfigError(f"Invalid `demo.delay` in {config_path}: expected a number >= 0.")
    return DemoRunner(delay=float(delay))


BACKEND = EngineBackend(id=ENGINE, build_runner=build_runner, cli_cmd=sys.executable)

__all__ = ["BACKEND", "DemoRunner", "build_runner", "real_engine_on_path"]
