"""Engine workers only when needed (issue #12): started by the first run, retired after
``[supervisor] engine_idle_s`` without runs, started again by the next run with the session resumed; ``takopictl status`` shows not-started and retired workers
as such, not as failures; resume lines of engines whose worker is not running are still
recognised without starting it. The fork server and the spare stay until an engine worker
runs, then retire after ``helper_idle_s`` without a start."""

from __future__ import annotations

import re
import time

import psutil
import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

IDLE = (
    "[supervisor]\nping_interval = 0.5\nshutdown_grace = 2.0\nengine_idle_s = 1.0\n"
    "helper_idle_s = 1.0\n"
)
RESUME_RE = re.compile(r"`scripted resume (\w+)`")


def _final_with(harness: SupervisorHarness, text: str) -> dict:
    return wait_until(lambda: [f for f in harness.finals() if text in f["text"]], 60)[0]


def _row(table: str, name: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if line.startswith(name))


def test_engine_worker_starts_on_first_use_retires_when_idle_and_comes_back(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=IDLE)
    supervisor.start()

    # Not started: no process, no error, and status says so.
    worker = supervisor.worker("engine:scripted")
    assert (worker["state"], worker["pid"], worker["last_error"]) == ("not-started", None, None)
    doc = supervisor.ctl_json("status")
    [engine] = [e for e in doc["engines"] if e["id"] == "scripted"]
    assert engine == {
        "id": "scripted",
        "status": "ok",
        "issue": None,
        "offered": True,
        "worker": "not-started",
    }
    table = supervisor.ctl("status").stdout
    assert _row(table, "engine:scripted")[:4] == ["engine:scripted", "engine", "not-started", "-"]
    assert "engine:scripted: last error" not in table

    # The first run starts it.
    supervisor.send("first answer=first-answer")
    first = _final_with(supervisor, "first-answer")
    assert first["text"].startswith("done")
    token = RESUME_RE.search(first["text"]).group(1)
    ready = supervisor.worker("engine:scripted")
    assert ready["state"] == "ready" and ready["pid"]
    pid = ready["pid"]

    # Idle for engine_idle_s: retired (not a failure, not a restart); helper_idle_s: the fork
    # server too.
    def retired() -> dict | None:
        status = supervisor.control("status")
        row = next(w for w in status["workers"] if w["name"] == "engine:scripted")
        gone = row["state"] == "retired" and row["pid"] is None  # its process has exited
        return status if gone and not status["helpers"] else None

    status = wait_until(retired, 30)
    row = next(w for w in status["workers"] if w["name"] == "engine:scripted")
    assert (row["pid"], row["last_error"], row["restarts"]) == (None, None, 0), row
    wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    )
    table = supervisor.ctl("status").stdout
    assert _row(table, "engine:scripted")[:4] == ["engine:scripted", "engine", "retired", "-"]
    assert "engine:scripted: last error" not in table
    assert [e["worker"] for e in supervisor.ctl_json("status")["engines"]] == ["retired"]

    # A reply starts a new worker and resumes the session; the reply is intact.
    supervisor.send("again answer=second-answer", reply_text=first["text"])
    second = _final_with(supervisor, "second-answer")
    assert second["text"].startswith("done")
    assert f"`scripted resume {token}`" in second["text"]
    again = supervisor.worker("engine:scripted")
    assert again["state"] == "ready" and again["pid"] not in (None, pid)
    assert again["restarts"] == 0 and again["last_error"] is None
    sessions = [line.split()[1] for line in supervisor.agent_log.read_text().splitlines()]
    assert sessions.count(token) == 4, sessions  # begin/end of the first run and the resumed one
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_resume_lines_of_engines_not_running_are_recognised_without_starting_them(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=IDLE)
    supervisor.start(engines=("scripted", "flood"))
    # Every message is checked against every engine's resume line: flood's worker is not
    # started for that (its regex came from the start-up load check).
    supervisor.send("hello answer=on-scripted")
    assert _final_with(supervisor, "on-scripted")["text"].startswith("done")
    assert supervisor.worker("engine:flood")["state"] == "not-started"
    assert supervisor.worker("engine:flood")["pid"] is None

    # A reply to a flood resume line goes to flood (its worker starts for the run).
    supervisor.send("3", reply_text="earlier answer\n\n`flood resume flood-7`")
    final = _final_with(supervisor, "flood resume flood-7")
    assert final["text"].startswith("done") and "3 events" in final["text"]
    assert supervisor.worker("engine:flood")["state"] == "ready"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_helpers_retire_while_an_engine_worker_runs_and_restarts_start_fresh(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(
        extra="[supervisor]\nping_interval = 0.5\nshutdown_grace = 2.0\nhelper_idle_s = 1.0\n"
    )
    supervisor.start()
    # No engine worker yet: the fork server stays past helper_idle_s to fork the first one.
    time.sleep(2.5)
    assert supervisor.control("status")["helpers"]
    supervisor.send("first answer=first-answer")
    assert _final_with(supervisor, "first-answer")["text"].startswith("done")
    forked = supervisor.worker("engine:scripted")["pid"]
    assert forked

    # No start for helper_idle_s: the fork server goes, the engine worker stays and answers.
    wait_until(lambda: not supervisor.control("status")["helpers"], 30)
    assert supervisor.worker("engine:scripted")["pid"] == forked
    assert "--endpoint" not in psutil.Process(forked).cmdline()  # forked, not spawned
    supervisor.send("second answer=second-answer")
    assert _final_with(supervisor, "second-answer")["text"].startswith("done")

    # A crash now restarts the worker as a fresh interpreter (no fork server to fork it).
    psutil.Process(forked).kill()
    restarted = wait_until(
        lambda: (
            (w := supervisor.worker("engine:scripted"))["state"] == "ready"
            and w["pid"] not in (None, forked)
            and w
        ),
        60,
    )
    assert "--endpoint" in psutil.Process(restarted["pid"]).cmdline()  # spawned
    supervisor.send("third answer=third-answer")
    assert _final_with(supervisor, "third-answer")["text"].startswith("done")
    assert not supervisor.control("status")["helpers"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
