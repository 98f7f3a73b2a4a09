"""Published plugins in their own worker processes under a real supervisor.

The supervisor (repo venv, Python 3.11) runs the process suite's ``recorder`` transport (inbox
dir -> outbox jsonl, from ``tests/process/plugin_dist``). ``[plugins.<id>] python`` puts:

- the kimi engine worker under the Python 3.13 compat venv (kimi uses PEP 695 syntax), which
  spawns the fake ``kimi`` CLI;
- the ``/run`` command worker (takopi-scripts) under the Python 3.11 compat venv;
- the ``/cron`` command worker under the Python 3.13 compat venv.

A chat message must reach the kimi plugin and come back as one terminal reply with the plugin's
resume line; replying to it must resume the same session; commands must run in their workers,
and their ``ctx.executor`` calls (also from cron's background task, after ``handle`` returned)
must land in the transport worker's executor.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.compat.plugins import venv_python
from tests.support.processes import marked_processes
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAKE_CLI = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "fake_agent_cli.py"
KIMI_RESUME = re.compile(r"`kimi --resume (kimi-[0-9a-f]+)`")

HELLO_SCRIPT = '''
"""Greets through the executor."""
from takopi.api import CommandResult

async def handle(ctx):
    await ctx.executor.send(f"hello {' '.join(ctx.args)}")
    return CommandResult(text=f"run ok: {ctx.command} {list(ctx.args)} cfg={ctx.plugin_config['tag']}")
'''


@pytest.fixture
def harness(supervisor: SupervisorHarness, compat_venvs: Path) -> Iterator[SupervisorHarness]:
    base = supervisor.base
    bin_dir = base / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kimi"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} kimi "$@"\n')
    wrapper.chmod(0o755)
    scripts = base / "scripts"
    scripts.mkdir()
    (scripts / "hello.py").write_text(textwrap.dedent(HELLO_SCRIPT))
    py311 = venv_python(compat_venvs, "py311")
    py313 = venv_python(compat_venvs, "py313")
    supervisor.config_path.write_text(
        textwrap.dedent(
            f"""\
            transport = "recorder"
            default_engine = "kimi"

            [kimi]
            model = "k2-test"

            [transports.recorder]
            dir = "{base}"

            [plugins.kimi]
            python = "{py313}"

            [plugins.run]
            python = "{py311}"
            scripts_dir = "{scripts}"
            tag = "from-config"

            [plugins.cron]
            python = "{py313}"

            [supervisor]
            ping_interval = 0.5
            ping_timeout = 5.0
            shutdown_grace = 2.0
            """
        )
    )
    supervisor.fake_cli_log = base / "fake-cli.jsonl"  # type: ignore[attr-defined]
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "FAKE_CLI_LOG": str(supervisor.fake_cli_log),  # type: ignore[attr-defined]
    }
    supervisor.start(engines=("kimi",), env=env)
    yield supervisor


def worker_exe(harness: SupervisorHarness, name: str) -> tuple[str, str]:
    """(python version reported at handshake, interpreter path the live worker was started
    with; venv interpreters are symlinks, so argv[0] tells the venvs apart, exe() does not)."""
    info = harness.worker(name)
    assert info["pid"], info
    return info["python"], psutil.Process(info["pid"]).cmdline()[0]


def send_command(harness: SupervisorHarness, text: str) -> None:
    harness.send(text, op="command")


def outbox_texts(harness: SupervisorHarness, op: str) -> list[str]:
    return [str(r.get("text")) for r in harness.outbox_ops(op)]


def test_engine_plugin_runs_in_py313_worker_and_resumes(
    harness: SupervisorHarness, compat_venvs: Path
) -> None:
    # Load-checked in its own interpreter before the transport started; its worker starts on
    # first use.
    [kimi] = [e for e in harness.control("status")["engines"] if e["id"] == "kimi"]
    assert (kimi["status"], kimi["offered"], kimi["worker"]) == ("ok", True, "not-started")

    harness.send("hello from chat")
    final = wait_until(lambda: harness.finals(), timeout=60)[0]
    version, exe = worker_exe(harness, "engine:kimi")
    assert version.startswith("3.13"), version
    assert exe == str(venv_python(compat_venvs, "py313"))
    text = final["text"]
    assert text.startswith("done"), text
    assert "answer to: hello from chat" in text
    match = KIMI_RESUME.search(text)
    assert match, text
    token = match.group(1)

    # Reply to the final message: the runtime extracts kimi's resume line and the kimi worker
    # resumes that session.
    harness.send("and a follow-up", reply_text=text)
    finals = wait_until(lambda: harness.finals() if len(harness.finals()) >= 2 else None, 60)
    second = finals[1]["text"]
    assert second.startswith("done"), second
    assert "answer to: and a follow-up" in second
    assert KIMI_RESUME.search(second).group(1) == token  # type: ignore[union-attr]

    calls = [json.loads(line) for line in harness.fake_cli_log.read_text().splitlines()]  # type: ignore[attr-defined]
    assert len(calls) == 2
    assert "--resume" not in calls[0]["argv"]
    assert calls[1]["argv"][calls[1]["argv"].index("--resume") + 1] == token
    assert calls[0]["argv"][calls[0]["argv"].index("--model") + 1] == "k2-test"

    assert harness.stop() == 0
    assert_no_leftovers(harness)


def test_command_plugins_run_in_their_own_workers(
    harness: SupervisorHarness, compat_venvs: Path
) -> None:
    send_command(harness, "/run hello a b")
    result = wait_until(lambda: outbox_texts(harness, "command_result"), timeout=60)
    assert result == ["run ok: hello ['a', 'b'] cfg=from-config"]
    # The script's executor.send reached the transport worker's executor.
    assert "hello a b" in outbox_texts(harness, "send")
    version, exe = worker_exe(harness, "command:run")
    assert version.startswith("3.11"), version
    assert exe == str(venv_python(compat_venvs, "py311"))

    # cron: handle() returns at once; its background task keeps using ctx.executor.
    send_command(harness, "/cron start 0.0001 /kimi tick tock")
    wait_until(
        lambda: "cron: started (every 0.0001h)" in outbox_texts(harness, "command_result"), 60
    )
    version, exe = worker_exe(harness, "command:cron")
    assert version.startswith("3.13"), version
    assert exe == str(venv_python(compat_venvs, "py313"))

    def ticks() -> list[str]:
        return [t for t in outbox_texts(harness, "send") if t.startswith("cron tick #")]

    wait_until(lambda: len(ticks()) >= 2, timeout=60)
    assert ticks()[0].startswith("cron tick #1 (every 0.0001h) @ ")
    # The recorder's executor answers run_one with "not supported"; cron posts it after each
    # tick header.
    assert "not supported" in outbox_texts(harness, "send")

    send_command(harness, "/cron status")
    wait_until(
        lambda: any(t.startswith("cron: running") for t in outbox_texts(harness, "command_result"))
    )
    status = next(
        t for t in outbox_texts(harness, "command_result") if t.startswith("cron: running")
    )
    assert "- engine: kimi" in status
    assert "- prompt: tick tock" in status

    send_command(harness, "/cron stop")
    wait_until(lambda: "cron: stopped" in outbox_texts(harness, "command_result"))
    assert harness.stop() == 0
    assert_no_leftovers(harness)


def test_all_workers_are_gone_after_a_kill(harness: SupervisorHarness) -> None:
    """kill -9 of the supervisor takes the plugin workers (all interpreters) with it."""
    harness.send("wake kimi up")  # engine workers start on first use
    wait_until(lambda: harness.finals(), timeout=60)
    send_command(harness, "/run hello")
    wait_until(lambda: outbox_texts(harness, "command_result"), timeout=60)
    workers = [p for p in marked_processes(harness.mark) if p.pid != harness.proc.pid]  # type: ignore[union-attr]
    pythons: set[str] = set()
    for proc in workers:
        try:
            pythons.add(proc.cmdline()[0])
        except (psutil.Error, IndexError):
            pass
    # repo venv (transport) + the 3.13 venv (kimi) + the 3.11 compat venv (/run)
    assert len(pythons) >= 3, pythons
    assert harness.proc is not None
    harness.proc.kill()
    harness.proc.wait(10)
    assert_no_leftovers(harness, timeout=10)
