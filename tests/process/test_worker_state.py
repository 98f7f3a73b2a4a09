"""``takopictl status`` reports what a worker does (issue #14): a worker restarted through a
fork server that answers late — after the new worker already connected, loaded and served —
is ``ready``, not ``starting``, and its pid is the new process."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"
SLOW_ZYGOTE = Path(__file__).parent / "faults" / "slow_zygote"


def start_with_slow_zygote(supervisor: SupervisorHarness) -> Path:
    """Start the supervisor; the returned flag file makes the fork server answer late."""
    flag = supervisor.base / "slow-zygote"
    env = supervisor.env()
    env["PYTHONPATH"] = os.pathsep.join([str(SLOW_ZYGOTE), env["PYTHONPATH"]])
    env["PROCTEST_SLOW_ZYGOTE"] = str(flag)
    env["PROCTEST_SLOW_ZYGOTE_DELAY"] = "3"
    supervisor.write_config(extra=FAST)
    supervisor.start(env=env)
    return flag


def worker_row(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in doc["workers"] if w["name"] == name)


def spawned_line(supervisor: SupervisorHarness, pid: int) -> bool:
    """The supervisor logged the spawn of ``pid`` (the fork server's answer arrived)."""
    return any(
        "worker.spawned" in line and f"pid={pid} " in line
        for line in supervisor.log_path.read_text().splitlines()
    )


def status_once(supervisor: SupervisorHarness, name: str, *, pid_not_in: tuple[Any, ...]) -> Any:
    """The status document once worker ``name`` reports a pid outside ``pid_not_in``."""
    doc = supervisor.ctl_json("status")
    return doc if worker_row(doc, name)["pid"] not in pid_not_in else None


def test_transport_killed_and_restarted_is_reported_ready(supervisor: SupervisorHarness) -> None:
    flag = start_with_slow_zygote(supervisor)
    supervisor.send("slow sleep=3 answer=survived-the-kill")
    wait_until(lambda: any("scripted resume" in str(r.get("text")) for r in supervisor.outbox()))
    old_pid = supervisor.worker("transport:recorder")["pid"]
    flag.touch()
    os.kill(old_pid, signal.SIGKILL)

    # The restarted transport delivers the run's journaled outcome, then a new round trip.
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=60)[0]
    assert delivery["status"] == "done" and delivery["answer"] == "survived-the-kill"
    new_pid = supervisor.outbox_ops("ready")[-1]["pid"]
    assert new_pid != old_pid
    supervisor.send("again answer=after-restart")
    final = wait_until(lambda: [f for f in supervisor.finals() if "after-restart" in f["text"]])
    assert final[0]["text"].startswith("done")

    # While the fork server's answer is still on its way, and once it arrived, status
    # reports the transport that serves: ready, with the new process's pid.
    row = worker_row(supervisor.ctl_json("status"), "transport:recorder")
    assert (row["state"], row["pid"]) == ("ready", new_pid), row
    wait_until(lambda: spawned_line(supervisor, new_pid), timeout=30)
    row = worker_row(supervisor.ctl_json("status"), "transport:recorder")
    assert (row["state"], row["pid"]) == ("ready", new_pid), row
    assert row["restarts"] == 1
    assert row["last_exit"] == "killed by SIGKILL"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_engine_restarted_through_a_late_fork_answer_takes_runs(
    supervisor: SupervisorHarness,
) -> None:
    flag = start_with_slow_zygote(supervisor)
    old_pid = supervisor.warm_engine()["pid"]
    flag.touch()
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: supervisor.worker("engine:scripted")["restarts"] == 1)
    # A run sent while the fork server's answer is still on its way runs on the new worker.
    supervisor.send("hello answer=new-engine")
    final = wait_until(lambda: [f for f in supervisor.finals() if "new-engine" in f["text"]])
    assert final[0]["text"].startswith("done")
    doc = wait_until(
        lambda: status_once(supervisor, "engine:scripted", pid_not_in=(None, old_pid)),
        timeout=30,
    )
    assert worker_row(doc, "engine:scripted")["state"] == "ready"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
