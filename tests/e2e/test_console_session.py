"""Issue 5's "done when", end to end: `takopi --transport console` with no config starts the
supervisor, the console transport and the engine workers as separate processes; a prompt streams
progress and a final answer with a resume line; pasting the resume line continues the thread;
/cancel stops a run with a terminal reply; end of input stops everything, leaving no process."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cli.conftest import TAKOPICTL, make_env
from tests.support.console import ConsoleSession

pytestmark = pytest.mark.timeout(180)


def ctl_status(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [TAKOPICTL, "status", "--json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[ConsoleSession, dict[str, str]]]:
    home = tmp_path / "home"
    home.mkdir()
    env = make_env(home)
    env["TAKOPI__DEMO__DELAY"] = "0.2"  # slow enough to watch (and cancel) a run
    env.pop("PYTHONPATH", None)
    sess = ConsoleSession(env, home)
    try:
        yield sess, env
    finally:
        if sess.proc.poll() is None:
            sess.proc.kill()
            sess.proc.wait(timeout=10)


def test_console_session_end_to_end(session: tuple[ConsoleSession, dict[str, str]]) -> None:
    sess, env = session
    sess.read_until("takopi console")

    status = ctl_status(env)
    supervisor_pid = status["supervisor"]["pid"]  # type: ignore[index]
    assert supervisor_pid == sess.proc.pid
    workers = {(w["kind"], w["id"]): w for w in status["workers"]}  # type: ignore[union-attr]
    assert workers[("transport", "console")]["state"] == "ready"
    # The demo engine's worker starts on first use.
    assert (workers[("engine", "demo")]["state"], workers[("engine", "demo")]["pid"]) == (
        "not-started",
        None,
    )

    # A prompt: progress lines stream in (edits of one message) before the final answer.
    sess.send("first prompt")
    progress = sess.read_until("You said: first prompt")
    assert any("working · demo" in line and "step" in line for line in progress)
    assert any("✓" in line for line in progress)
    final = sess.read_until("demo resume ")
    resume_line = next(line for line in final if "demo resume " in line).strip().strip("`")

    # Supervisor, console transport and demo engine are separate processes.
    status = ctl_status(env)
    workers = {(w["kind"], w["id"]): w for w in status["workers"]}  # type: ignore[union-attr]
    assert workers[("engine", "demo")]["state"] == "ready"
    pids = {w["pid"] for w in workers.values() if w["pid"] is not None}
    assert {workers[k]["pid"] for k in [("transport", "console"), ("engine", "demo")]} <= pids
    assert supervisor_pid not in pids
    assert len(pids) == len(workers)  # one process per plugin
    service_pids = {supervisor_pid, *pids}
    for pid in pids:
        assert psutil.pid_exists(pid)

    # Pasting the resume line continues that thread (the demo engine keeps its history).
    sess.send(resume_line + "\\")
    sess.send("second prompt")
    sess.read_until("This thread has 2 prompts so far")
    sess.read_until("2. second prompt")

    # /cancel: the run ends with a terminal reply, its resume line kept.
    sess.send("a long one")
    sess.read_until("working · demo")
    sess.send("/cancel")
    cancelled = sess.read_until("cancelled")
    assert any("cancelled" in line for line in cancelled)

    # End of input: the supervisor finishes and every process of the service is gone.
    assert sess.proc.stdin is not None
    sess.proc.stdin.close()
    assert sess.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in service_pids):
        time.sleep(0.1)
    leftovers = []
    for pid in service_pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                leftovers.append(pid)
        except psutil.NoSuchProcess:
            pass
    assert leftovers == []
