"""``clitest``: a JSONL subprocess engine running :mod:`takopi_clitest.agent`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from takopi.api import (
    Action,
    ActionEvent,
    CompletedEvent,
    EngineBackend,
    ResumeToken,
    StartedEvent,
)
from takopi.runner import JsonlSubprocessRunner, ResumeTokenMixin
from takopi.runners.mock import mock_resume_re


class CliTestRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    engine = "clitest"
    resume_re = mock_resume_re("clitest")

    def command(self) -> str:
        return sys.executable

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        return ["-m", "takopi_clitest.agent", resume.value if resume else "-"]

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[Any]:
        kind = data.get("type")
        if kind == "session":
            token = ResumeToken(engine=self.engine, value=data["id"])
            return [StartedEvent(engine=self.engine, resume=token, title="clitest")]
        if kind == "action":
            action = Action(id=data["id"], kind="command", title=data["title"])
            return [ActionEvent(engine=self.engine, action=action, phase="completed", ok=True)]
        if kind == "done":
            return [
                CompletedEvent(
                    engine=self.engine, ok=True, answer=data["answer"], resume=found_session
                )
            ]
        return []


def _build(config: dict[str, Any], config_path: Path) -> CliTestRunner:
    return CliTestRunner()


CLITEST = EngineBackend(id="clitest", build_runner=_build, cli_cmd="python3")
