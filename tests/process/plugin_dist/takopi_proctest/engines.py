"""Test engines: ``scripted`` (a real CLI subprocess), ``flood`` (in-process event firehose)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from takopi.api import (
    Action,
    ActionEvent,
    CompletedEvent,
    ConfigError,
    EngineBackend,
    ResumeToken,
    StartedEvent,
)
from takopi.runner import BaseRunner, JsonlSubprocessRunner, ResumeTokenMixin
from takopi.runners.mock import mock_resume_re
from takopi.runners.run_options import get_run_options
from takopi.utils.paths import get_run_base_dir


class ScriptedRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    engine = "scripted"
    resume_re = mock_resume_re("scripted")

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def command(self) -> str:
        return sys.executable

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        return ["-m", "takopi_proctest.agent", resume.value if resume else "-"]

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
            opts = get_run_options()
            meta = {
                "cwd": str(get_run_base_dir()) if get_run_base_dir() else None,
                "model": opts.model if opts else None,
            }
            return [StartedEvent(engine=self.engine, resume=token, title="scripted", meta=meta)]
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


def _build_scripted(config: dict[str, Any], config_path: Path) -> ScriptedRunner:
    return ScriptedRunner(config)


SCRIPTED = EngineBackend(id="scripted", build_runner=_build_scripted, cli_cmd="python3")


class FloodRunner(ResumeTokenMixin, BaseRunner):
    """``prompt`` = number of action events to emit, in-process (pipeline throughput)."""

    engine = "flood"
    resume_re = mock_resume_re("flood")

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[Any]:
        token = resume or ResumeToken(engine="flood", value="flood-1")
        yield StartedEvent(engine="flood", resume=token, title="flood")
        n = int(prompt.split()[0]) if prompt.split() and prompt.split()[0].isdigit() else 10
        action = Action(id="x", kind="command", title="tick")
        event = ActionEvent(engine="flood", action=action, phase="updated")
        for _ in range(n):
            yield event
        yield CompletedEvent(engine="flood", ok=True, answer=f"{n} events", resume=token)


FLOOD = EngineBackend(
    id="flood", build_runner=lambda config, path: FloodRunner(), cli_cmd="python3"
)


class ConfigProbeRunner(ResumeTokenMixin, BaseRunner):
    """Answers with what ``load_settings()`` (no argument) reads in the engine worker."""

    engine = "cfgprobe"
    resume_re = mock_resume_re("cfgprobe")

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[Any]:
        from takopi_proctest.probe import settings_probe

        token = resume or ResumeToken(engine="cfgprobe", value="probe-1")
        yield StartedEvent(engine="cfgprobe", resume=token, title="cfgprobe")
        yield CompletedEvent(engine="cfgprobe", ok=True, answer=settings_probe(), resume=token)


CFGPROBE = EngineBackend(
    id="cfgprobe", build_runner=lambda config, path: ConfigProbeRunner(), cli_cmd="python3"
)


class FlakyRunner(ResumeTokenMixin, BaseRunner):
    """Answers at once; see :func:`_build_flaky` for how its worker crash-loops."""

    engine = "flaky"
    resume_re = mock_resume_re("flaky")

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[Any]:
        token = resume or ResumeToken(engine="flaky", value="flaky-1")
        yield StartedEvent(engine="flaky", resume=token, title="flaky")
        answer = f"flaky says {prompt.strip()}"
        yield CompletedEvent(engine="flaky", ok=True, answer=answer, resume=token)


def _build_flaky(config: dict[str, Any], config_path: Path) -> FlakyRunner:
    """The worker dies while loading until the file ``$PROCTEST_FLAKY_GATE`` exists."""
    gate = os.environ.get("PROCTEST_FLAKY_GATE")
    if gate and not os.path.exists(gate):
        os._exit(5)
    return FlakyRunner()


FLAKY = EngineBackend(id="flaky", build_runner=_build_flaky, cli_cmd="python3")


def _bad(config: dict[str, Any], config_path: Path) -> Any:
    raise ConfigError("[badconfig] is never valid")


BADCONFIG = EngineBackend(id="badconfig", build_runner=_bad, cli_cmd="python3")
