"""The built-in ``demo`` engine stands in only when no real engine can run, and never blocks a
``[projects.demo]`` alias (issue #11 item 3; a reference config with that alias must load)."""

from __future__ import annotations

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nshutdown_grace = 2.0\n[demo]\ndelay = 0\n"


def _engines(harness: SupervisorHarness) -> dict[str, dict]:
    return {e["id"]: e for e in harness.control("status")["engines"]}


def _final_with(harness: SupervisorHarness, text: str) -> dict:
    return wait_until(lambda: [f for f in harness.finals() if text in f["text"]], 60)[0]


def test_a_projects_demo_alias_loads_next_to_a_real_engine(supervisor: SupervisorHarness) -> None:
    project = supervisor.base / "demo-project"
    project.mkdir()
    supervisor.write_config(extra=f'{FAST}[projects.demo]\npath = "{project}"\n')
    supervisor.start(engines=("scripted", "demo"))
    demo = _engines(supervisor)["demo"]
    assert (demo["offered"], demo["worker"]) == (False, None), demo
    assert demo["issue"] == "a [projects.demo] alias is configured"
    assert "engine:demo" not in {w["name"] for w in supervisor.control("status")["workers"]}
    # `/demo` is the project: the default engine runs in its directory.
    supervisor.send("/demo hello answer=in-the-project")
    final = _final_with(supervisor, "in-the-project")
    assert final["text"].startswith("done")
    assert "`ctx: demo`" in final["text"], final["text"]
    assert "scripted resume" in final["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_demo_stays_out_while_a_real_engine_can_run(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra=FAST)
    supervisor.start(engines=("scripted", "demo"))
    engines = _engines(supervisor)
    assert engines["scripted"]["offered"] and engines["scripted"]["worker"] == "not-started"
    assert not engines["demo"]["offered"]
    assert engines["demo"]["issue"] == "a real engine is available"
    # Not an engine, so `/demo` is no directive: the prompt goes to the default engine.
    supervisor.send("/demo hi answer=went-to-scripted")
    final = _final_with(supervisor, "went-to-scripted")
    assert final["text"].startswith("done") and "scripted resume" in final["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_demo_stands_in_when_no_real_engine_can_run(supervisor: SupervisorHarness) -> None:
    # codex's CLI is not on the test machine's PATH: it is known but cannot run.
    supervisor.write_config(default_engine="codex", extra=FAST)
    supervisor.start(engines=("codex", "demo"), env={"PATH": "/usr/bin:/bin"})
    engines = _engines(supervisor)
    assert engines["codex"]["status"] == "missing_cli" and engines["codex"]["worker"] is None
    assert engines["demo"]["offered"] and engines["demo"]["worker"] == "not-started"
    supervisor.send("/demo show me answer=x")
    final = _final_with(supervisor, "demo resume")
    assert final["text"].startswith("done"), final["text"]
    assert supervisor.worker("engine:demo")["state"] == "ready"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_demo_chosen_as_default_engine_is_offered(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(default_engine="demo", extra=FAST)
    supervisor.start(engines=("scripted", "demo"))
    engines = _engines(supervisor)
    assert engines["demo"]["offered"] and engines["scripted"]["offered"]
    assert supervisor.control("status")["default_engine"] == "demo"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


@pytest.mark.parametrize(
    ("default", "extra", "message"),
    [
        ("broken", "", "error: Failed to load engine 'broken': RuntimeError: proctest: broken"),
        (
            "demo",
            '[demo]\ndelay = "soon"\n',
            "error: Default engine 'demo' unavailable: invalid [demo] config",
        ),
    ],
)
def test_a_default_engine_that_cannot_be_used_is_fatal(
    supervisor: SupervisorHarness, default: str, extra: str, message: str
) -> None:
    supervisor.write_config(default_engine=default, extra=extra)
    supervisor.start(engines=("scripted", default), wait_ready=False)
    assert supervisor.proc is not None
    assert supervisor.proc.wait(60) == 1
    assert message in supervisor.log(), supervisor.log()
    # The transport never got as far as announcing itself.
    assert supervisor.outbox_ops("ready") == []
    assert_no_leftovers(supervisor)
