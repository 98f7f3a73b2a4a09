"""Waiting for engine workers: a run waiting for a restarting engine sees the incarnation
that becomes ready, and an engine that crash-loops never delays messages for other engines.

``flaky`` dies while loading unless ``$PROCTEST_FLAKY_GATE`` exists; the restart policy below
never quarantines it, so it crash-loops for as long as the test wants. The gate is open while
the supervisor load-checks its engines at start-up (a plugin that always dies while loading is
not an engine at all), then closed before the first run starts flaky's worker.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

CRASH_LOOP = (
    "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"
    "engine_wait = 25\n"
    "[supervisor.restart]\ninitial_backoff = 0.2\nmax_backoff = 0.4\n"
    "max_restarts = 100000\nmax_failures_before_ready = 100000\n"
)
RESUME_RE = re.compile(r"`(scripted resume \w+)`")


def _start(harness: SupervisorHarness, flaky_prompt: str) -> None:
    """Start with flaky loadable, then make its worker crash-loop from its first use on (a
    run with ``flaky_prompt``)."""
    gate = harness.base / "flaky-may-load"
    gate.write_text("ok\n")
    harness.write_config(extra=CRASH_LOOP)
    harness.start(engines=("scripted", "flaky"), env={"PROCTEST_FLAKY_GATE": str(gate)})
    assert harness.worker("engine:flaky")["state"] == "not-started"
    gate.unlink()
    harness.send(f"/flaky {flaky_prompt}")
    # flaky is crash-looping
    wait_until(lambda: harness.worker("engine:flaky")["restarts"] >= 2)


def _final_with(harness: SupervisorHarness, text: str, timeout: float) -> str:
    found = wait_until(
        lambda: [f for f in harness.finals() if text in str(f.get("text"))], timeout=timeout
    )
    return str(found[0]["text"])


def test_crash_looping_engine_does_not_delay_other_engines(
    supervisor: SupervisorHarness,
) -> None:
    _start(supervisor, "wake up")
    # A new thread on the default engine. Every message is checked for every engine's
    # resume line; flaky's worker is never there to answer. (A stall would be >= 30 s.)
    supervisor.send("hello answer=quick-one")
    first = _final_with(supervisor, "quick-one", timeout=15)
    assert first.startswith("done"), first
    match = RESUME_RE.search(first)
    assert match is not None, first

    # A reply that resumes the scripted thread.
    supervisor.send("again answer=quick-two", reply_text=first)
    second = _final_with(supervisor, "quick-two", timeout=15)
    assert second.startswith("done"), second
    assert match.group(1) in second

    flaky = supervisor.worker("engine:flaky")
    assert flaky["state"] not in ("ready", "quarantined"), flaky
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_run_waiting_for_a_restarting_engine_gets_the_new_incarnation(
    supervisor: SupervisorHarness,
) -> None:
    _start(supervisor, "are you there")
    wait_until(lambda: [r for r in supervisor.control("runs")["runs"] if r["engine"] == "flaky"])
    # Let the slot go through more incarnations while the run waits, then let one load.
    restarts = supervisor.worker("engine:flaky")["restarts"]
    wait_until(lambda: supervisor.worker("engine:flaky")["restarts"] >= restarts + 2)
    (supervisor.base / "flaky-may-load").write_text("ok\n")

    final = _final_with(supervisor, "are you there", timeout=60)
    assert final.startswith("done") and "flaky says are you there" in final, final
    assert supervisor.worker("engine:flaky")["state"] == "ready"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_resume_line_is_journaled_before_the_engine_worker_ever_runs(
    supervisor: SupervisorHarness,
) -> None:
    """A reply resuming a thread of an engine whose worker cannot start yet: the supervisor
    is killed while the run waits for it. The next start answers ``interrupted`` with the
    thread's resume line — the journal had it from the run's acceptance on (the line comes
    from the template flaky's load-check shipped, flaky's worker never formatted it)."""
    gate = supervisor.base / "flaky-may-load"
    gate.write_text("ok\n")
    supervisor.write_config(extra=CRASH_LOOP)
    supervisor.start(engines=("scripted", "flaky"), env={"PROCTEST_FLAKY_GATE": str(gate)})
    gate.unlink()
    line = "`flaky resume thread-77`"
    supervisor.send("go on", reply_text=f"done · flaky\n\nearlier answer\n\n{line}")
    wait_until(lambda: [r for r in supervisor.control("runs")["runs"] if r["engine"] == "flaky"])
    wait_until(lambda: supervisor.worker("engine:flaky")["restarts"] >= 1)
    assert supervisor.worker("engine:flaky")["state"] != "ready"
    journal = supervisor.base / "state" / "journal.jsonl"
    begins = [
        record
        for record in map(json.loads, journal.read_text().splitlines())
        if record["op"] == "begin" and record["engine"] == "flaky"
    ]
    assert [record["resume_line"] for record in begins] == [line]
    assert supervisor.proc is not None
    supervisor.proc.kill()
    supervisor.proc.wait(5)

    gate.write_text("ok\n")
    supervisor.start(engines=("scripted", "flaky"), env={"PROCTEST_FLAKY_GATE": str(gate)})
    delivery = wait_until(lambda: supervisor.outbox_ops("delivery"), timeout=20)[0]
    assert delivery["status"] == "interrupted"
    assert delivery["resume_line"] == line
    assert line in delivery["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
