"""Shared fixtures for tests/unit (other areas may add theirs here)."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from takopi.events import EventFactory
from takopi.model import ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState, JsonlSubprocessRunner, ResumeTokenMixin


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio only."""
    return "asyncio"


# --- core-runner: a JsonlSubprocessRunner driving a small Python script -------------------


@dataclass(slots=True)
class ScriptState(JsonlRunState):
    """Run state of :class:`ScriptCliRunner` (a slotted JsonlRunState subclass)."""

    factory: EventFactory = field(default_factory=lambda: EventFactory("scripted"))
    seen: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class ScriptCliRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    """Runs ``python <script> [resume]`` and translates a tiny JSONL vocabulary.

    Lines: ``{"type": "started", "session": S}``, ``{"type": "action", "id", "phase",
    "kind", "title"}``, ``{"type": "completed", "ok", "answer", "error"}``,
    ``{"type": "boom"}`` (translate raises). The resume token value is passed as argv[1].
    """

    script: Path = Path("/nonexistent")
    engine: str = "scripted"
    resume_re: re.Pattern[str] = re.compile(
        r"(?im)^\s*`?scripted\s+resume\s+(?P<token>[^`\s]+)`?\s*$"
    )
    executable: str = sys.executable
    extra_env: dict[str, str] | None = None

    def command(self) -> str:
        return self.executable

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        return ["-u", str(self.script), resume.value if resume else ""]

    def env(self, *, state: Any) -> dict[str, str] | None:
        if self.extra_env is None:
            return None
        import os

        return {**os.environ, **self.extra_env}

    def new_state(self, prompt: str, resume: ResumeToken | None) -> ScriptState:
        return ScriptState(factory=EventFactory(self.engine))

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        state.seen.append(data)
        kind = data.get("type")
        factory: EventFactory = state.factory
        if kind == "started":
            token = ResumeToken(self.engine, data["session"])
            # Bypass the factory's check so the runner's own rules are what gets tested.
            from takopi.model import StartedEvent

            return [StartedEvent(engine=self.engine, resume=token, title=data.get("title"))]
        if kind == "action":
            return [
                factory.action(
                    phase=data.get("phase", "started"),
                    action_id=data["id"],
                    kind=data.get("kind", "tool"),
                    title=data.get("title", data["id"]),
                    ok=data.get("ok"),
                )
            ]
        if kind == "completed":
            return [
                factory.completed(
                    ok=data.get("ok", True),
                    answer=data.get("answer", ""),
                    error=data.get("error"),
                    resume=found_session,
                )
            ]
        if kind == "boom":
            raise ValueError("cannot translate this")
        return []


@pytest.fixture
def script_runner(tmp_path: Path) -> Callable[..., ScriptCliRunner]:
    """``script_runner(source, **kw)`` writes ``source`` to a file and returns a runner for it."""
    counter = iter(range(1000))

    def make(source: str, **kwargs: Any) -> ScriptCliRunner:
        path = tmp_path / f"cli_{next(counter)}.py"
        path.write_text(textwrap.dedent(source))
        return ScriptCliRunner(script=path, **kwargs)

    return make


# --- core-config: fake plugin distributions on sys.path -----------------------------------


@dataclass
class FakeDists:
    """Builds tiny installed distributions (``*.dist-info`` + modules) in one sys.path dir."""

    root: Path

    def add(
        self,
        dist: str,
        entry_points: dict[str, dict[str, str]],
        modules: dict[str, str] | None = None,
        version: str = "1.0",
    ) -> Path:
        """Create distribution ``dist`` declaring ``{group: {name: "mod:attr"}}``."""
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        lines: list[str] = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{name} = {value}" for name, value in eps.items())
            lines.append("")
        (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return info


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A :class:`FakeDists` whose directory is first on ``sys.path`` for this test."""
    from takopi.plugins import clear_load_errors

    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    clear_load_errors()
    yield FakeDists(root)
    clear_load_errors()
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and str(getattr(module, "__file__", "")).startswith(str(root)):
            del sys.modules[name]
