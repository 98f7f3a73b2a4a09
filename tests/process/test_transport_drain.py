"""SIGTERM gives the transport worker a bounded grace to deliver final messages.

The recorder's ``send_delay`` makes every send/edit slow, like a paced chat API (Telegram's
outbox waits about a second between ops in a chat): a run answered while takopi shuts down is
still being sent when the supervisor stops the transport worker.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import psutil
import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

GRACEFUL = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 20.0\n"
FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


def _final_for(harness: SupervisorHarness, message_id: int) -> dict[str, Any] | None:
    for record in harness.finals():
        if record.get("reply_to") == message_id:
            return record
    return None


def test_run_answered_during_shutdown_reaches_the_chat(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=GRACEFUL, recorder="send_delay = 1.0")
    supervisor.start()
    message_id = supervisor.send("late sleep=1 answer=late-answer")
    wait_until(
        lambda: any(r["message_id"] == message_id for r in supervisor.control("runs")["runs"]),
        timeout=30,
    )

    assert supervisor.stop(timeout=60) == 0
    final = _final_for(supervisor, message_id)
    assert final is not None, supervisor.outbox()
    assert final["text"].startswith("done") and "late-answer" in final["text"]
    log = supervisor.log()
    assert "transport.stopping" in log and "transport.stopped" in log, log
    assert "transport.stop_grace_over" not in log  # it was done before the grace ran out
    assert_no_leftovers(supervisor)


def test_transport_worker_exits_at_once_when_its_supervisor_is_gone(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST, recorder="send_delay = 1.0")
    supervisor.start()
    message_id = supervisor.send("slow sleep=30 answer=never")
    wait_until(
        lambda: any(r["message_id"] == message_id for r in supervisor.control("runs")["runs"]),
        timeout=30,
    )
    assert supervisor.proc is not None
    supervisor.proc.send_signal(signal.SIGKILL)
    supervisor.proc.wait(10)
    # the parent-death SIGTERM must not buy the orphaned transport worker any grace
    assert_no_leftovers(supervisor, timeout=3.0)


def test_second_sigterm_ends_a_stopping_transport_worker(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST, recorder="final_delay = 60")
    supervisor.start()
    pid = supervisor.worker("transport:recorder")["pid"]
    # The run is answered; its final message takes long to send: SIGTERM starts the grace...
    message_id = supervisor.send("quick answer=slow-final")
    wait_until(lambda: "runner.completed_event" in supervisor.log(), timeout=30)
    wait_until(
        lambda: not any(r["message_id"] == message_id for r in supervisor.control("runs")["runs"])
    )
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: "transport.stopping" in supervisor.log())
    assert _alive(pid)
    # ...and a second one ends it now.
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid), timeout=3.0)
    # (a transport that exits 0 has finished: the supervisor stops by itself)
    assert supervisor.proc is not None
    assert supervisor.proc.wait(30) == 0
    assert_no_leftovers(supervisor)


def test_graceful_transport_restart_leaves_runs_in_flight_to_the_journal(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("slow sleep=4 answer=survived-transport-restart")
    wait_until(lambda: "resume" in str(supervisor.outbox()[-1].get("text")))
    old_pid = supervisor.worker("transport:recorder")["pid"]
    restarted = supervisor.control("restart", {"names": ["transport:recorder"]})
    assert restarted["restarted"] == ["transport:recorder"]
    # Not waited for (still in flight), not cancelled: delivered by the next transport.
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=30)[0]
    assert delivery["status"] == "done", delivery
    assert delivery["answer"] == "survived-transport-restart"
    new = supervisor.worker("transport:recorder")
    assert new["pid"] != old_pid and new["state"] == "ready"
    assert "transport.stop_grace_over" not in supervisor.log()
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
