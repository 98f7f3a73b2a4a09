"""The supervisor validates ``takopi.toml`` in a short-lived child process: pydantic never
loads into the long-lived supervisor, and config errors still read as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def _maps_pydantic(pid: int) -> bool:
    return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def test_the_supervisor_runs_and_reloads_without_loading_pydantic(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config()
    supervisor.start()
    assert supervisor.proc is not None
    supervisor.send("hello answer=first")
    wait_until(lambda: [f for f in supervisor.finals() if "first" in f["text"]])
    text = supervisor.config_path.read_text()
    supervisor.config_path.write_text(text + "\n[supervisor]\nengine_idle_s = 600\n")
    assert supervisor.control("reload")["reloaded"] is True
    supervisor.config_path.write_text("watch_config = 'sometimes'\n" + text)
    bad = supervisor.control("reload")
    assert bad["reloaded"] is False
    assert "watch_config" in bad["error"] and "Invalid config" in bad["error"]
    assert not _maps_pydantic(supervisor.proc.pid)
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_an_invalid_config_stops_the_start_with_the_validators_message(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config(extra="[projects.web]\npath = '/srv/web'\ntypo = 1\n")
    supervisor.start(wait_ready=False)
    assert supervisor.proc is not None
    assert supervisor.proc.wait(60) != 0
    log = supervisor.log()
    assert "Invalid config" in log and "projects.web.typo" in log, log
    assert_no_leftovers(supervisor)
