"""Per-session serialization: resume runs of one thread never overlap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from takopi.model import CompletedEvent, ResumeToken, StartedEvent
from takopi.runners.mock import Return, ScriptRunner, Wait

from .conftest import ScriptCliRunner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

Log = list[tuple[str, str]]


async def consume(
    runner: ScriptRunner | ScriptCliRunner, name: str, resume: ResumeToken | None, log: Log
) -> None:
    async for event in runner.run(name, resume):
        log.append((name, type(event).__name__))


async def test_concurrent_resumes_of_one_thread_serialize() -> None:
    gate = anyio.Event()
    runner = ScriptRunner([Wait(gate), Return(answer="x")], engine="mock")
    token = ResumeToken("mock", "t1")
    log: Log = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, runner, "A", token, log)
        await wait_all_tasks_blocked()
        assert log == [("A", "StartedEvent")]
        tg.start_soon(consume, runner, "B", token, log)
        await wait_all_tasks_blocked()
        # B is waiting for the session lock: it has not even started.
        assert log == [("A", "StartedEvent")]
        assert [c.prompt for c in runner.calls] == ["A"]
        gate.set()
    assert log == [
        ("A", "StartedEvent"),
        ("A", "CompletedEvent"),
        ("B", "StartedEvent"),
        ("B", "CompletedEvent"),
    ]


async def test_different_threads_run_in_parallel() -> None:
    gate = anyio.Event()
    runner = ScriptRunner([Wait(gate), Return(answer="x")], engine="mock")
    log: Log = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, runner, "A", ResumeToken("mock", "t1"), log)
        await wait_all_tasks_blocked()
        tg.start_soon(consume, runner, "B", ResumeToken("mock", "t2"), log)
        await wait_all_tasks_blocked()
        # B got going while A still holds its own (different) session.
        assert log == [("A", "StartedEvent"), ("B", "StartedEvent")]
        gate.set()
    assert sorted(log[2:]) == [("A", "CompletedEvent"), ("B", "CompletedEvent")]


async def test_new_run_takes_the_lock_before_yielding_started() -> None:
    gate = anyio.Event()
    runner = ScriptRunner([Wait(gate), Return(answer="new")], engine="mock", resume_value="fresh")
    log: Log = []
    lock_free_at_started: list[bool] = []

    async def new_run(tg: anyio.abc.TaskGroup) -> None:
        async for event in runner.run("N", None):
            log.append(("N", type(event).__name__))
            if isinstance(event, StartedEvent):
                lock = runner.lock_for(event.resume)
                lock_free_at_started.append(lock.value == 1)
                # A follow-up on the brand-new thread arrives right now.
                tg.start_soon(consume, runner, "R", event.resume, log)

    async with anyio.create_task_group() as tg:
        tg.start_soon(new_run, tg)
        await wait_all_tasks_blocked()
        assert lock_free_at_started == [False]
        assert log == [("N", "StartedEvent")]
        gate.set()
    assert log == [
        ("N", "StartedEvent"),
        ("N", "CompletedEvent"),
        ("R", "StartedEvent"),
        ("R", "CompletedEvent"),
    ]


async def test_lock_is_released_when_the_consumer_stops_early() -> None:
    gate = anyio.Event()
    runner = ScriptRunner([Wait(gate), Return(answer="never")], engine="mock", resume_value="s")
    run = runner.run("N", None)
    first = await run.__anext__()  # type: ignore[attr-defined]
    assert isinstance(first, StartedEvent)
    lock = runner.lock_for(first.resume)
    assert lock.value == 0
    await run.aclose()  # type: ignore[attr-defined]
    assert lock.value == 1
    events = [e async for e in ScriptRunner([Return(answer="ok")], engine="mock").run("x", None)]
    assert isinstance(events[-1], CompletedEvent)


PRELUDE = """
import json, os, sys, time, pathlib
def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
"""


async def test_subprocess_resumes_serialize(
    script_runner: Callable[..., ScriptCliRunner], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    spawned = tmp_path / "spawned"
    spawned.mkdir()
    runner = script_runner(
        PRELUDE
        + f"""
prompt_marker = pathlib.Path({str(spawned)!r}) / str(os.getpid())
prompt_marker.write_text("x")
emit({{"type": "started", "session": sys.argv[1]}})
while not pathlib.Path({str(gate)!r}).exists():
    time.sleep(0.01)
emit({{"type": "completed", "answer": "done"}})
"""
    )
    token = ResumeToken("scripted", "shared")
    log: Log = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, runner, "A", token, log)
        while log != [("A", "StartedEvent")]:
            await anyio.sleep(0.01)
        tg.start_soon(consume, runner, "B", token, log)
        await wait_all_tasks_blocked()
        # B's process was never spawned while A holds the session.
        assert len(list(spawned.iterdir())) == 1
        gate.write_text("open")
    assert log == [
        ("A", "StartedEvent"),
        ("A", "CompletedEvent"),
        ("B", "StartedEvent"),
        ("B", "CompletedEvent"),
    ]
    assert len(list(spawned.iterdir())) == 2
