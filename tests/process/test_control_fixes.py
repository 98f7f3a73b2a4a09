"""Control-socket behaviour found in integration: ``logs supervisor`` serves the supervisor's
own recent log lines; ``restart`` drains an engine's runs inside the supervisor."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.process.conftest import REPO, SupervisorHarness, assert_no_leftovers, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


def takopictl(harness: SupervisorHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takopi.cli.ctl", "--config", str(harness.config_path), *args],
        env=harness.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


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

    result = takopictl(supervisor, "logs", "supervisor", "-n", "1000")
    assert result.returncode == 0, result.stderr
    assert "supervisor.ready" in result.stdout
    assert "unknown worker" not in result.stderr

    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
