"""Workers know the active config: ``load_settings()`` with no argument reads the supervisor's
``--config`` (``TAKOPI_CONFIG_PATH``) in transport, engine and command workers, whether they
were forked by the zygote, started fresh, or handed the warm standby spare."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


def _expected(harness: SupervisorHarness) -> str:
    return f"settings-from {harness.config_path} transport=recorder"


def _start(harness: SupervisorHarness, *args: str) -> None:
    home = harness.base / "home"
    home.mkdir(exist_ok=True)
    harness.write_config(extra=FAST)
    # An empty home: without TAKOPI_CONFIG_PATH a worker would look for
    # ~/.takopi/takopi.toml there and fail.
    harness.start(
        engines=("scripted", "cfgprobe"),
        args=args,
        env={"HOME": str(home), "TAKOPI_CONFIG_PATH": ""},
    )


def _check_transport_and_command(harness: SupervisorHarness) -> None:
    harness.send("", op="settings")
    probe = wait_until(lambda: harness.outbox_ops("settings"))[0]["probe"]
    assert probe.startswith(_expected(harness)), probe
    harness.send("/cfgpath", op="command")
    result = wait_until(lambda: harness.outbox_ops("command_result"))[0]["text"]
    assert result.startswith(_expected(harness)), result


def test_zygote_forked_workers_read_the_supervisors_config(
    supervisor: SupervisorHarness,
) -> None:
    _start(supervisor)
    status = supervisor.control("status")
    assert [h["name"] for h in status["helpers"]] == ["zygote"]
    _check_transport_and_command(supervisor)
    assert _expected(supervisor) in _engine_probe_again(supervisor)
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_fresh_and_standby_workers_read_the_supervisors_config(
    supervisor: SupervisorHarness,
) -> None:
    _start(supervisor, "--no-zygote")
    _check_transport_and_command(supervisor)
    assert _expected(supervisor) in _engine_probe_again(supervisor)

    # The next engine incarnation is the warm spare started before it was needed.
    spare = wait_until(
        lambda: [h for h in supervisor.control("status")["helpers"] if h["name"] == "standby"]
    )[0]
    old = supervisor.worker("engine:cfgprobe")
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(
        lambda: (
            (w := supervisor.worker("engine:cfgprobe"))["state"] == "ready"
            and w["pid"] == spare["pid"]
        )
    )
    text = _engine_probe_again(supervisor)
    assert _expected(supervisor) in text and f"pid={spare['pid']}" in text, text
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def _engine_probe_again(harness: SupervisorHarness) -> str:
    before = len(harness.finals())
    harness.send("/cfgprobe again")
    return str(wait_until(lambda: harness.finals()[before:])[0]["text"])
