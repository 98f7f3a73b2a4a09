"""Every engine runner: stopping a run kills its CLI and the CLI's children; plugin wiring."""

from __future__ import annotations

import time
from contextlib import aclosing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from takopi.backends import EngineBackend
from takopi.model import StartedEvent, TakopiEvent
from takopi.runners import claude, codex, opencode, pi
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir
from tests.runners.conftest import FakeCli

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.usefixtures("isolated_home")]

FIRST_LINE: dict[str, dict[str, Any]] = {
    "codex": {"type": "thread.started", "thread_id": "thread-1"},
    "claude": {"type": "system", "subtype": "init", "session_id": "sess-1"},
    "opencode": {"type": "step_start", "sessionID": "ses_abc", "part": {"id": "p"}},
    "pi": {"type": "session", "id": "01a211a6-10a8-7786-9fb8-afcca4ba4bdc", "cwd": "/x"},
}
BUILDERS: dict[str, Any] = {
    "codex": codex.build_runner,
    "claude": claude.build_runner,
    "opencode": opencode.build_runner,
    "pi": pi.build_runner,
}


def wait_gone(pids: list[int], limit_s: float = 5.0) -> list[int]:
    """Pids still alive (zombies count as gone) after waiting up to ``limit_s``."""
    deadline = time.monotonic() + limit_s
    alive = pids
    while True:
        alive = [
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


@pytest.mark.parametrize("engine", sorted(BUILDERS))
async def test_closing_the_stream_kills_cli_and_children(
    fake_cli: Any, workdir: Path, engine: str
) -> None:
    cli: FakeCli = fake_cli(engine)
    cli.script([FIRST_LINE[engine]], sleep=60, child=True)
    runner = BUILDERS[engine]({}, Path("/cfg/takopi.toml"))
    token = set_run_base_dir(workdir)
    try:
        seen: list[TakopiEvent] = []
        async with aclosing(runner.run("hello", None)) as events:
            async for event in events:
                seen.append(event)
                if isinstance(event, StartedEvent):
                    break
    finally:
        reset_run_base_dir(token)
    assert isinstance(seen[-1], StartedEvent)
    call = cli.last
    assert wait_gone([call["pid"], call["child_pid"]]) == []


@pytest.mark.parametrize("engine", ["claude", "pi"])
async def test_cancelling_the_run_kills_cli_and_children(
    fake_cli: Any, workdir: Path, engine: str
) -> None:
    cli: FakeCli = fake_cli(engine)
    cli.script([FIRST_LINE[engine]], sleep=60, child=True)
    runner = BUILDERS[engine]({}, Path("/cfg/takopi.toml"))
    started = anyio.Event()
    seen: list[TakopiEvent] = []

    async def consume() -> None:
        token = set_run_base_dir(workdir)
        try:
            async for event in runner.run("hello", None):
                seen.append(event)
                if isinstance(event, StartedEvent):
                    started.set()
        finally:
            reset_run_base_dir(token)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with anyio.fail_after(20):
            await started.wait()
        tg.cancel_scope.cancel()
    assert [type(e) for e in seen] == [StartedEvent]
    call = cli.last
    assert wait_gone([call["pid"], call["child_pid"]]) == []


def test_engines_are_registered_entry_points() -> None:
    found = {ep.name: ep for ep in entry_points(group="takopi.engine_backends")}
    for engine in ("codex", "claude", "opencode", "pi"):
        assert engine in found, sorted(found)
        backend = found[engine].load()
        assert isinstance(backend, EngineBackend)
        assert backend.id == engine
        assert backend.install_cmd and backend.install_cmd.startswith("npm install -g ")
        runner = backend.build_runner({}, Path("/cfg/takopi.toml"))
        assert runner.engine == engine
