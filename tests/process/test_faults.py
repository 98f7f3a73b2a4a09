"""Fault tests with a real supervisor, real workers, a real agent CLI subprocess.

Each test asserts the terminal-reply guarantee (ARCHITECTURE.md §3) and that no worker or agent
process is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest

from tests.support.processes import marked_processes
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]

RESUME_RE = re.compile(r"`scripted resume (\w+)`")
FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


def agents(harness: SupervisorHarness) -> list[psutil.Process]:
    out = []
    for proc in marked_processes(harness.mark):
        try:
            if "takopi_proctest.agent" in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            pass
    return out


def resume_seen(harness: SupervisorHarness) -> str | None:
    for record in harness.outbox():
        match = RESUME_RE.search(str(record.get("text") or ""))
        if match:
            return match.group(1)
    return None


def test_run_round_trip_and_clean_stop(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("hello steps=2 answer=hi-there")
    final = wait_until(lambda: supervisor.finals())[0]
    assert final["text"].startswith("done")
    assert "hi-there" in final["text"]
    assert RESUME_RE.search(final["text"])
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_kill_engine_worker_mid_run(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("long sleep=60")
    token = wait_until(lambda: resume_seen(supervisor))
    wait_until(lambda: agents(supervisor))
    old_pid = supervisor.worker("engine:scripted")["pid"]
    os.kill(old_pid, signal.SIGKILL)

    final = wait_until(lambda: supervisor.finals(), timeout=20)[0]
    assert final["text"].startswith("error")
    assert "killed by SIGKILL" in final["text"]
    assert f"`scripted resume {token}`" in final["text"]
    # the agent CLI the dead worker left behind is gone, the worker is back
    wait_until(lambda: not agents(supervisor), timeout=5)
    wait_until(
        lambda: (
            supervisor.worker("engine:scripted")["state"] == "ready"
            and supervisor.worker("engine:scripted")["pid"] != old_pid
        )
    )
    assert supervisor.worker("engine:scripted")["restarts"] == 1
    # replying to the error resumes the same session
    supervisor.send("again answer=resumed-ok", reply_text=final["text"])
    done = wait_until(lambda: [f for f in supervisor.finals() if "resumed-ok" in f["text"]])[0]
    assert done["text"].startswith("done")
    assert f"`scripted resume {token}`" in done["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_kill_transport_worker_mid_run_delivers_after_restart(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("slow sleep=3 answer=survived-transport-death")
    token = wait_until(lambda: resume_seen(supervisor))
    old_pid = supervisor.worker("transport:recorder")["pid"]
    os.kill(old_pid, signal.SIGKILL)
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=30)[0]
    assert delivery["status"] == "done"
    assert delivery["answer"] == "survived-transport-death"
    assert delivery["resume_line"] == f"`scripted resume {token}`"
    assert delivery["message_id"] == 1
    new = supervisor.worker("transport:recorder")
    assert new["pid"] != old_pid and new["state"] == "ready"
    # acknowledged: nothing pending any more
    wait_until(lambda: supervisor.control("runs")["pending_deliveries"] == [])
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_sigstopped_worker_is_detected_and_replaced(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    old_pid = supervisor.warm_engine()["pid"]
    os.kill(old_pid, signal.SIGSTOP)
    wait_until(
        lambda: (
            supervisor.worker("engine:scripted")["pid"] not in (None, old_pid)
            and supervisor.worker("engine:scripted")["state"] == "ready"
        ),
        timeout=20,
    )
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    assert "unresponsive" in (supervisor.worker("engine:scripted")["last_error"] or "") or (
        "SIGKILL" in (supervisor.worker("engine:scripted")["last_exit"] or "")
    )
    supervisor.send("after stop answer=still-works")
    final = wait_until(lambda: [f for f in supervisor.finals() if "still-works" in f["text"]])[0]
    assert final["text"].startswith("done")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_broken_engine_plugins_are_left_out_and_a_failing_worker_is_quarantined(
    supervisor: SupervisorHarness,
) -> None:
    gate = supervisor.base / "flaky-may-load"
    gate.write_text("ok\n")
    supervisor.write_config(
        extra=FAST + "[supervisor.restart]\nmax_failures_before_ready = 2\ninitial_backoff = 0.05\n"
    )
    supervisor.start(
        engines=("scripted", "broken", "exiter", "badconfig", "flaky"),
        env={"PROCTEST_FLAKY_GATE": str(gate)},
    )
    # Plugins that cannot be loaded (import error, killing the process while imported, a
    # runner that cannot be built) are not engines: no worker, not offered, and why is shown.
    status = supervisor.control("status")
    engines = {e["id"]: e for e in status["engines"]}
    assert {w["name"] for w in status["workers"]} == {
        "engine:scripted",
        "engine:flaky",
        "transport:recorder",
    }
    for engine, reason in (
        ("broken", "proctest: broken on purpose"),
        ("exiter", "exit code 9"),
        ("badconfig", "never valid"),
    ):
        assert engines[engine]["status"] == "load_error", engines[engine]
        assert reason in engines[engine]["issue"], engines[engine]
        assert not engines[engine]["offered"] and engines[engine]["worker"] is None
    supervisor.send("works answer=fine")
    final = wait_until(lambda: supervisor.finals())[0]
    assert final["text"].startswith("done") and "fine" in final["text"]
    # An engine that loaded when checked but whose worker now keeps failing is quarantined,
    # and selecting it gets a clear answer, not a hang.
    gate.unlink()
    supervisor.send("/flaky hi")
    wait_until(lambda: supervisor.worker("engine:flaky")["state"] == "quarantined", timeout=30)
    assert "before becoming ready" in supervisor.worker("engine:flaky")["last_error"]
    unavailable = wait_until(
        lambda: (
            supervisor.outbox_ops("unavailable")
            or [f for f in supervisor.finals() if "flaky" in f["text"]]
        )
    )
    assert "flaky" in str(unavailable[0])
    supervisor.send("/flaky again")
    unavailable = wait_until(lambda: supervisor.outbox_ops("unavailable"))
    assert unavailable[0]["engine"] == "flaky" and "before becoming ready" in str(unavailable[0])
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_kill_supervisor_leaves_nothing_and_next_start_reports_interrupted(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("doomed sleep=60")
    token = wait_until(lambda: resume_seen(supervisor))
    wait_until(lambda: agents(supervisor))
    assert supervisor.proc is not None
    killed_at = time.monotonic()
    supervisor.proc.kill()
    supervisor.proc.wait(5)
    wait_until(lambda: not marked_processes(supervisor.mark), timeout=3.0)
    assert time.monotonic() - killed_at < 3.5

    supervisor.start()
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=20)[0]
    assert delivery["status"] == "interrupted"
    assert delivery["resume_line"] == f"`scripted resume {token}`"
    assert f"`scripted resume {token}`" in delivery["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_cancel_kills_agent_and_reports_cancelled(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("to cancel sleep=60")
    wait_until(lambda: resume_seen(supervisor))
    wait_until(lambda: agents(supervisor))
    supervisor.send("", op="cancel")
    final = wait_until(lambda: supervisor.finals())[0]
    assert final["text"].startswith("`cancelled`")
    wait_until(lambda: not agents(supervisor), timeout=5)
    wait_until(lambda: supervisor.control("runs")["runs"] == [])
    assert supervisor.control("runs")["pending_deliveries"] == []
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_graceful_stop_gives_in_flight_run_its_terminal_reply(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    supervisor.send("long sleep=60")
    token = wait_until(lambda: resume_seen(supervisor))
    assert supervisor.stop() == 0
    finals = supervisor.finals()
    assert finals and "shutting down" in finals[0]["text"]
    assert f"`scripted resume {token}`" in finals[0]["text"]
    assert_no_leftovers(supervisor)


def test_second_supervisor_on_same_config_refuses(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    import subprocess
    import sys

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "takopi.supervisor",
            "--config",
            str(supervisor.config_path),
            "--engine",
            "scripted",
        ],
        env=supervisor.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0
    assert "refusing to bind" in second.stderr or "already running" in second.stderr
    # the first one is unaffected
    supervisor.send("still here answer=yes")
    assert wait_until(lambda: supervisor.finals())[0]["text"].startswith("done")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_workers_are_forked_by_the_zygote_and_survive_its_death(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start()
    assert supervisor.proc is not None
    supervisor.warm_engine()
    status = supervisor.control("status")
    zygote = next(h for h in status["helpers"] if h["name"] == "zygote")
    for worker in status["workers"]:
        # re-parented to the supervisor (child subreaper), not children of the fork server
        assert psutil.Process(worker["pid"]).ppid() == supervisor.proc.pid
    os.kill(zygote["pid"], signal.SIGKILL)
    # workers are unaffected; a restart after the fork server's death still works
    old = supervisor.worker("engine:scripted")["pid"]
    os.kill(old, signal.SIGKILL)
    wait_until(
        lambda: (
            supervisor.worker("engine:scripted")["state"] == "ready"
            and supervisor.worker("engine:scripted")["pid"] not in (None, old)
        )
    )
    supervisor.send("after zygote death answer=fine")
    final = wait_until(lambda: [f for f in supervisor.finals() if "fine" in f["text"]])[0]
    assert final["text"].startswith("done")
    # the fork server came back for later spawns
    wait_until(
        lambda: any(
            h["name"] == "zygote" and h["pid"] != zygote["pid"]
            for h in supervisor.control("status")["helpers"]
        )
    )
    lost = [line for line in supervisor.log().splitlines() if "zygote.lost" in line]
    assert lost and "killed by SIGKILL" in lost[0], lost
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_quarantined_transport_makes_supervisor_exit_non_zero(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(
        extra="[supervisor.restart]\nmax_restarts = 2\ninitial_backoff = 0.05\n"
    )
    # the recorder crashes in build_and_run without its `dir`
    supervisor.config_path.write_text(
        supervisor.config_path.read_text().replace(f'dir = "{supervisor.base}"', "", 1)
    )
    supervisor.start(wait_ready=False)
    assert supervisor.proc is not None
    code = supervisor.proc.wait(60)
    assert code == 3
    assert "transport 'recorder' quarantined" in supervisor.log_path.read_text()
    assert_no_leftovers(supervisor)


def test_transport_killed_while_sending_the_final_delivers_it_after_restart(
    supervisor: SupervisorHarness,
) -> None:
    """The run is over and the transport took its terminal event, but dies while the final
    message is still being sent: the outcome must stay in the journal for the next transport
    (it is acknowledged only once the message is really out)."""
    supervisor.write_config(extra=FAST, recorder="final_delay = 60")
    supervisor.start()
    message_id = supervisor.send("quick answer=final-in-flight")
    wait_until(lambda: "runner.completed_event" in supervisor.log(), timeout=30)
    wait_until(
        lambda: not any(r["message_id"] == message_id for r in supervisor.control("runs")["runs"])
    )
    assert supervisor.finals() == []  # the final is still "being sent"
    old_pid = supervisor.worker("transport:recorder")["pid"]
    os.kill(old_pid, signal.SIGKILL)
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=30)[0]
    assert delivery["status"] == "done"
    assert delivery["answer"] == "final-in-flight"
    assert delivery["message_id"] == message_id
    wait_until(lambda: supervisor.control("runs")["pending_deliveries"] == [])
    assert len(supervisor.outbox_ops("delivery")) == 1
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
