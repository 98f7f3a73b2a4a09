"""No orphans: cancelling a run or stopping early kills the CLI's whole process group."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable

import anyio
import psutil
import pytest

from takopi.model import ActionEvent, CompletedEvent, StartedEvent
from takopi.utils.subprocess import spawn_process, terminate_process

from .conftest import ScriptCliRunner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MakeRunner = Callable[..., ScriptCliRunner]

# The CLI starts a grandchild (optionally ignoring SIGTERM), reports both pids, then hangs.
HANGING_CLI = """
import json, os, signal, subprocess, sys, time
IGNORE_TERM = {ignore_term}
def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
code = "import signal, time\\n"
if IGNORE_TERM:
    code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
code += "print('ready', flush=True)\\ntime.sleep(300)\\n"
child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
child.stdout.readline()  # the grandchild has installed its handler
if IGNORE_TERM:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
emit({{"type": "started", "session": "hang"}})
emit({{"type": "action", "id": "pids", "title": f"{{os.getpid()}} {{child.pid}}"}})
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _wait_gone(pids: list[int], limit: float = 15.0) -> bool:
    with anyio.move_on_after(limit):
        while not all(_gone(pid) for pid in pids):
            await anyio.sleep(0.05)
        return True
    return False


def _pids(event: ActionEvent) -> list[int]:
    return [int(p) for p in event.action.title.split()]


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_aclose_kills_process_group_including_grandchild(
    script_runner: MakeRunner, ignore_term: bool
) -> None:
    runner = script_runner(HANGING_CLI.format(ignore_term=ignore_term))
    run = runner.run("x", None)
    pids: list[int] = []
    async for event in run:
        if isinstance(event, ActionEvent):
            pids = _pids(event)
            break
    assert len(pids) == 2 and not any(_gone(p) for p in pids)
    await run.aclose()  # type: ignore[attr-defined]
    # terminate_process waits for the group (SIGKILL after the grace period if needed).
    assert _gone(pids[0])
    assert await _wait_gone(pids)


async def test_cancellation_kills_process_group(script_runner: MakeRunner) -> None:
    runner = script_runner(HANGING_CLI.format(ignore_term=False))
    pids: list[int] = []
    seen: list[str] = []

    async def consume(scope: anyio.CancelScope) -> None:
        async for event in runner.run("x", None):
            seen.append(type(event).__name__)
            if isinstance(event, ActionEvent):
                pids.extend(_pids(event))
                scope.cancel()

    with anyio.CancelScope() as scope:
        await consume(scope)
    assert seen == ["StartedEvent", "ActionEvent"]
    assert pids and await _wait_gone(pids)


async def test_break_without_aclose_still_kills(script_runner: MakeRunner) -> None:
    runner = script_runner(HANGING_CLI.format(ignore_term=False))
    pids: list[int] = []
    run = runner.run("x", None)
    async for event in run:
        if isinstance(event, ActionEvent):
            pids = _pids(event)
            break
    del run
    gc.collect()  # the event loop's async-generator finaliser closes the run
    assert pids and await _wait_gone(pids)


async def test_leftover_grandchild_holding_stdout_does_not_hang_the_run(
    script_runner: MakeRunner,
) -> None:
    runner = script_runner(
        """
import json, subprocess, sys
# A background process that inherits stdout and outlives the CLI.
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(json.dumps({"type": "started", "session": "bg"}), flush=True)
print(json.dumps({"type": "action", "id": "bg", "title": str(child.pid)}), flush=True)
print(json.dumps({"type": "completed", "answer": "finished"}), flush=True)
"""
    )
    events = [e async for e in runner.run("x", None)]
    assert isinstance(events[0], StartedEvent)
    done = events[-1]
    assert isinstance(done, CompletedEvent) and done.ok and done.answer == "finished"
    action = events[1]
    assert isinstance(action, ActionEvent)
    assert await _wait_gone([int(action.action.title)])


async def test_terminate_process_escalates_to_sigkill() -> None:
    proc = await spawn_process(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(300)\n",
        ]
    )
    assert proc.stdout is not None
    assert (await proc.stdout.receive()).startswith(b"ready")
    await terminate_process(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    # Idempotent on an already finished process.
    await terminate_process(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            await stream.aclose()


async def test_spawned_process_leads_its_own_group() -> None:
    proc = await spawn_process([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        import os

        assert os.getpgid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) != os.getpgid(0)
    finally:
        await terminate_process(proc, grace=0.5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                await stream.aclose()
    assert proc.returncode == -signal.SIGTERM


async def test_manage_subprocess_cleans_up_the_group_on_error() -> None:
    from takopi.utils.subprocess import manage_subprocess

    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    pids: list[int] = []
    with pytest.raises(LookupError):
        async with manage_subprocess([sys.executable, "-c", code], grace=1.0) as proc:
            assert proc.stdout is not None
            pids = [proc.pid, int((await proc.stdout.receive()).split()[0])]
            raise LookupError("body failed")
    assert proc.returncode is not None
    assert await _wait_gone(pids)
