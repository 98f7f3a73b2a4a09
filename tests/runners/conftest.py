"""Scripted engine CLIs for the runner tests (tier 1).

``fake_cli`` writes a small executable named like the real CLI (``codex``, ``claude``, …) into a
temp bin dir that is put first on ``PATH``. When run, the script records its argv, stdin, cwd and
environment to a JSON file, then replays a scenario: stdout lines (verbatim, so invalid JSON and
huge lines are possible), stderr lines, optional sleep, and an exit code.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.runners.run_options import EngineRunOptions, apply_run_options
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "streams"

_SCRIPT = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys, time
    scenario = json.load(open({scenario!r}))
    calls = {record!r}
    stdin = sys.stdin.read() if not sys.stdin.closed else ""
    entry = {{"argv": sys.argv[1:], "stdin": stdin, "cwd": os.getcwd(), "env": dict(os.environ),
             "pid": os.getpid()}}
    if scenario.get("child"):
        import subprocess
        entry["child_pid"] = subprocess.Popen(["sleep", "60"]).pid
    with open(calls, "a") as fh:
        fh.write(json.dumps(entry) + "\\n")
    for line in scenario.get("stderr", []):
        sys.stderr.write(line + "\\n")
    sys.stderr.flush()
    for line in scenario.get("stdout", []):
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()
    if scenario.get("sleep"):
        time.sleep(scenario["sleep"])
    sys.exit(scenario.get("exit", 0))
    """
)


@dataclass
class FakeCli:
    """One scripted CLI: set its scenario, run, then inspect ``calls``."""

    name: str
    bin_dir: Path
    scenario_path: Path
    record_path: Path
    cwd: Path

    def script(
        self,
        stdout: list[Any] | None = None,
        *,
        stderr: list[str] | None = None,
        exit: int = 0,
        sleep: float = 0,
        child: bool = False,
    ) -> None:
        """Set what the CLI prints: dict/list items are JSON-encoded, strings go verbatim.

        ``sleep`` holds the CLI after its output; ``child`` makes it start a ``sleep 60``
        grandchild first (its pid is recorded as ``child_pid``).
        """
        lines = [item if isinstance(item, str) else json.dumps(item) for item in stdout or []]
        scenario = {
            "stdout": lines,
            "stderr": stderr or [],
            "exit": exit,
            "sleep": sleep,
            "child": child,
        }
        self.scenario_path.write_text(json.dumps(scenario))

    def script_fixture(self, name: str, **kwargs: Any) -> None:
        """Replay ``tests/fixtures/streams/<name>`` (a recorded real stream)."""
        lines = [ln for ln in (FIXTURES / name).read_text().splitlines() if ln.strip()]
        self.script(lines, **kwargs)

    def script_recorded(self, name: str) -> None:
        """Replay the recorded real stream ``<name>.jsonl`` with its recorded exit code."""
        index = json.loads((FIXTURES / "real_streams.json").read_text())
        rc = index.get(name, {}).get("returncode", 0)
        self.script_fixture(f"{name}.jsonl", exit=rc)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every invocation so far: ``argv`` (without the program), ``stdin``, ``cwd``, ``env``."""
        if not self.record_path.exists():
            return []
        return [json.loads(ln) for ln in self.record_path.read_text().splitlines() if ln]

    @property
    def last(self) -> dict[str, Any]:
        """The last invocation."""
        calls = self.calls
        assert calls, f"{self.name} was never run"
        return calls[-1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Iterator[Any]:
    """Factory: ``fake_cli("codex")`` installs a scripted ``codex`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def make(name: str) -> FakeCli:
        scenario = tmp_path / f"{name}.scenario.json"
        record = tmp_path / f"{name}.calls.jsonl"
        exe = bin_dir / name
        exe.write_text(
            _SCRIPT.format(python=sys.executable, scenario=str(scenario), record=str(record))
        )
        exe.chmod(0o755)
        cli = FakeCli(name, bin_dir, scenario, record, workdir)
        cli.script([])
        return cli

    yield make


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME, without the variables that move engines' state (pi creates its session
    folder and opencode reads its database under HOME) or that runners default (NO_COLOR, CI)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("PI_CODING_AGENT_DIR", "XDG_DATA_HOME", "NO_COLOR", "CI"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only an empty dir: no engine CLI can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


async def collect(
    runner: Any,
    prompt: str,
    resume: ResumeToken | None = None,
    *,
    cwd: Path | None = None,
    model: str | None = None,
    reasoning: str | None = None,
) -> list[TakopiEvent]:
    """Run ``runner`` to completion (cwd = ``cwd``, optional run options); all its events."""
    token = set_run_base_dir(cwd) if cwd is not None else None
    try:
        options = EngineRunOptions(model=model, reasoning=reasoning)
        with apply_run_options(options if (model or reasoning) else None):
            events: list[TakopiEvent] = []
            stream: AsyncIterator[TakopiEvent] = runner.run(prompt, resume)
            async for event in stream:
                events.append(event)
            return events
    finally:
        if token is not None:
            reset_run_base_dir(token)


def summarize(events: list[TakopiEvent]) -> list[tuple[Any, ...]]:
    """``("started", token, title)``, ``("action", kind, phase, id, title, ok)``,
    ``("completed", ok, answer, error, token)``."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, StartedEvent):
            out.append(("started", event.resume.value, event.title))
        elif isinstance(event, ActionEvent):
            a = event.action
            out.append(("action", a.kind, event.phase, a.id, a.title, event.ok))
        elif isinstance(event, CompletedEvent):
            token = event.resume.value if event.resume is not None else None
            out.append(("completed", event.ok, event.answer, event.error, token))
    return out


def check_contract(events: list[TakopiEvent]) -> None:
    """At most one started, exactly one completed which is last, resume tokens agree."""
    started = [e for e in events if isinstance(e, StartedEvent)]
    completed = [e for e in events if isinstance(e, CompletedEvent)]
    assert len(started) <= 1, started
    assert len(completed) == 1, completed
    assert events[-1] is completed[0]
    if started:
        assert completed[0].resume == started[0].resume
