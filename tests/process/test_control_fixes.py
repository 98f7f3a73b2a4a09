"""Control-socket behaviour found in integration: ``logs supervisor`` serves the supervisor's
own recent log lines; ``restart`` drains an engine's runs inside the supervisor."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from takopi.supervisor.control import request
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


def test_logs_supervisor_serves_its_own_recent_lines(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    wait_until(lambda: "supervisor.ready" in supervisor.log())
    assert supervisor.proc is not None

    answer = supervisor.control("logs", {"name": "supervisor", "lines": 1000})
    assert answer["name"] == "supervisor" and answer["pid"] == supervisor.proc.pid
    lines = answer["lines"]
    assert any("worker.ready" in line and "transport:recorder" in line for line in lines)
    assert any("supervisor.ready" in line for line in lines)
    assert all("\x1b[" not in line for line in lines)
    assert len(supervisor.control("logs", {"name": "supervisor", "lines": 2})["lines"]) == 2

    result = supervisor.ctl("logs", "supervisor", "-n", "1000")
    assert result.returncode == 0, result.stderr
    assert "supervisor.ready" in result.stdout
    assert "unknown worker" not in result.stderr

    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


RESUME_RE = re.compile(r"`scripted resume (\w+)`")


def _final_for(harness: SupervisorHarness, message_id: int) -> dict[str, Any] | None:
    for record in harness.finals():
        if record.get("reply_to") == message_id:
            return record
    return None


def _run_of(harness: SupervisorHarness, message_id: int) -> dict[str, Any] | None:
    for run in harness.control("runs")["runs"]:
        if run["message_id"] == message_id:
            return run  # type: ignore[no-any-return]
    return None


def _agent_parent(harness: SupervisorHarness, final_text: str) -> int:
    """The pid of the engine worker that ran the agent CLI of this reply's session."""
    match = RESUME_RE.search(final_text)
    assert match is not None, final_text
    for line in harness.agent_log.read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["begin", match.group(1)]:
            return int(parts[3])
    raise AssertionError(f"no agent began session {match.group(1)}")


class Background:
    """A control request answered on another thread (the restart verb blocks)."""

    def __init__(self, harness: SupervisorHarness, verb: str, args: dict[str, Any]) -> None:
        self.answer: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._call, args=(harness, verb, args))
        self.thread.start()

    def _call(self, harness: SupervisorHarness, verb: str, args: dict[str, Any]) -> None:
        self.answer = request(harness.control_socket, verb, args, timeout=90)

    def result(self, timeout: float = 60) -> dict[str, Any]:
        self.thread.join(timeout)
        assert self.answer is not None, "no answer"
        return self.answer


def test_restart_drains_in_flight_runs_and_queues_new_ones(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    old_pid = supervisor.warm_engine()["pid"]
    first = supervisor.send("first sleep=5 answer=first-answer")
    wait_until(lambda: (run := _run_of(supervisor, first)) and run["state"] == "running")

    # Runs still in flight after the wait: refused, nothing restarted, the run goes on.
    refused = request(
        supervisor.control_socket,
        "restart",
        {"names": ["scripted"], "wait_timeout": 0.2},
        timeout=30,
    )
    assert not refused["ok"] and refused["code"] == "failed", refused
    assert "nothing restarted" in refused["error"]
    assert supervisor.worker("engine:scripted")["pid"] == old_pid

    restart = Background(supervisor, "restart", {"names": ["engine:scripted"]})
    # A new run while the engine drains waits for the new worker instead of starting on
    # the old one.
    second = supervisor.send("second answer=second-answer")
    wait_until(lambda: (run := _run_of(supervisor, second)) and run["state"] == "queued")
    assert _final_for(supervisor, second) is None

    answer = restart.result()
    assert answer["ok"], answer
    assert answer["result"] == {"restarted": ["engine:scripted"], "waited": 1, "cancelled": 0}
    done_first = wait_until(lambda: _final_for(supervisor, first))["text"]
    assert done_first.startswith("done") and "first-answer" in done_first, done_first
    assert _agent_parent(supervisor, done_first) == old_pid

    done_second = wait_until(lambda: _final_for(supervisor, second))["text"]
    assert done_second.startswith("done") and "second-answer" in done_second, done_second
    new_pid = supervisor.worker("engine:scripted")["pid"]
    assert new_pid != old_pid
    assert _agent_parent(supervisor, done_second) == new_pid
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_restart_force_cancels_in_flight_runs_with_terminal_reply(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    old_pid = supervisor.warm_engine()["pid"]
    long = supervisor.send("long sleep=60 answer=never")
    wait_until(lambda: (run := _run_of(supervisor, long)) and run["resume_line"])

    answer = supervisor.control("restart", {"names": ["scripted"], "force": True})
    assert answer == {"restarted": ["engine:scripted"], "waited": 1, "cancelled": 1}
    final = wait_until(lambda: _final_for(supervisor, long))["text"]
    assert "restarted by the operator" in final and "never" not in final, final
    assert RESUME_RE.search(final), final
    worker = supervisor.worker("engine:scripted")
    assert worker["state"] == "ready" and worker["pid"] != old_pid

    after = supervisor.send("after answer=works-again")
    text = wait_until(lambda: _final_for(supervisor, after))["text"]
    assert text.startswith("done") and "works-again" in text
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
