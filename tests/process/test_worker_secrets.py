"""Transport secrets stay in the transport worker (issue #14, ARCHITECTURE §3 least privilege).

The supervisor is given a transport secret three ways: in the transport's config table
(``token``), as a ``TAKOPI__TRANSPORTS__RECORDER__*`` override, and mirrored in an innocently
named variable (``CHAT_BOT``). After workers of every kind were forked or handed the standby —
including an engine worker started *after* the transport (a killed engine's replacement) —
none but the transport worker holds any of them: not in its start environment
(``/proc/<pid>/environ``), not anywhere in its memory (``/proc/<pid>/mem``), and not in the
environment of the agent CLI it runs. The transport itself holds them (the scanner's positive
control: it finds what is there).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid

import pytest

from tests.process.procmem import holds_secret, memory_contains, start_environ
from tests.support.processes import MARK
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

FAST = "[supervisor]\nping_interval = 0.5\nping_timeout = 1.0\nshutdown_grace = 2.0\n"


class Secrets:
    def __init__(self) -> None:
        self.config = f"cfg-{uuid.uuid4().hex}"
        self.override = f"env-{uuid.uuid4().hex}"
        self.provider = f"sk-{uuid.uuid4().hex}"

    def all(self) -> list[str]:
        return [self.config, self.override]


def _start(harness: SupervisorHarness, secrets: Secrets, *args: str) -> None:
    harness.write_config(extra=FAST, recorder=f'token = "{secrets.config}"')
    harness.start(
        engines=("scripted",),
        args=args,
        env={
            "TAKOPI__TRANSPORTS__RECORDER__API_TOKEN": secrets.override,
            "CHAT_BOT": secrets.config,  # not credential-named: caught by its value
            "OPENAI_API_KEY": secrets.provider,  # a provider key a third-party engine may use
        },
    )


def _pids(harness: SupervisorHarness) -> dict[str, int]:
    status = harness.control("status")
    pids = {w["name"]: w["pid"] for w in status["workers"] if w.get("pid")}
    pids.update({h["name"]: h["pid"] for h in status["helpers"] if h.get("pid")})
    return pids


def _restart_engine(harness: SupervisorHarness) -> int:
    """Kill -9 the engine worker (started on first use); the pid of its replacement."""
    old = harness.warm_engine()["pid"]
    os.kill(old, signal.SIGKILL)
    new = wait_until(
        lambda: (
            (w := harness.worker("engine:scripted"))["state"] == "ready"
            and w["pid"] != old
            and w["pid"]
        )
    )
    return int(new)


def _start_command_worker(harness: SupervisorHarness) -> int:
    # A command that does not read the config file itself: one that does (load_settings)
    # holds whatever the file holds, as in the reference — what is checked here is what
    # takopi hands a worker (environment, handshake, snapshots, forked pages).
    harness.send("/echo hi", op="command")
    wait_until(lambda: harness.outbox_ops("command_result"))
    return int(harness.worker("command:echo")["pid"])


def _agent_environ(harness: SupervisorHarness) -> dict[str, str]:
    """Start a run whose agent CLI sleeps; its environment (the engine worker's, at run time)."""

    def begins() -> list[str]:
        if not harness.agent_log.exists():
            return []
        return [ln for ln in harness.agent_log.read_text().splitlines() if ln.startswith("begin")]

    earlier = len(begins())  # the warm-up runs' agents, gone by now
    harness.send("sleep=2 answer=envcheck")
    line = wait_until(lambda: begins()[earlier:])[-1]
    pid = int(line.split()[2])
    env = start_environ(pid)
    wait_until(lambda: any("envcheck" in f["text"] for f in harness.finals()))
    return env


def _check_isolation(
    harness: SupervisorHarness, secrets: Secrets, isolated: dict[str, int]
) -> None:
    transport = _pids(harness)["transport:recorder"]
    # Positive control: the scanner finds the secrets where they are.
    assert memory_contains(transport, secrets.override.encode())
    assert memory_contains(transport, secrets.config.encode())
    leaks = {
        f"{name} ({pid}) holds {secret[:4]}…": where
        for name, pid in isolated.items()
        for secret in secrets.all()
        if (where := holds_secret(pid, secret))
    }
    assert not leaks, leaks


def test_forked_workers_hold_no_transport_secret(supervisor: SupervisorHarness) -> None:
    secrets = Secrets()
    _start(supervisor, secrets)
    command = _start_command_worker(supervisor)
    engine = _restart_engine(supervisor)
    zygote = _pids(supervisor)["zygote"]
    agent_env = _agent_environ(supervisor)

    _check_isolation(supervisor, secrets, {"zygote": zygote, "engine": engine, "command": command})
    assert not [k for k in agent_env if k.startswith("TAKOPI__TRANSPORTS__")]
    assert not [k for k, v in agent_env.items() if secrets.config in v or secrets.override in v]
    # What the third-party engine's CLI may need is still there; so is the test's marker.
    assert agent_env.get("OPENAI_API_KEY") == secrets.provider
    assert agent_env.get(MARK) == supervisor.mark
    # The fork server was started with no credential at all.
    zygote_env = start_environ(zygote)
    assert "OPENAI_API_KEY" not in zygote_env and "CHAT_BOT" not in zygote_env, zygote_env

    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_standby_and_fresh_workers_hold_no_transport_secret(
    supervisor: SupervisorHarness,
) -> None:
    secrets = Secrets()
    _start(supervisor, secrets, "--no-zygote")
    command = _start_command_worker(supervisor)
    first = supervisor.warm_engine()["pid"]  # engine workers start on first use
    spare = wait_until(lambda: (pid := _pids(supervisor).get("standby")) != first and pid)
    engine = _restart_engine(supervisor)
    assert engine == spare  # the replacement is the warm spare
    agent_env = _agent_environ(supervisor)

    _check_isolation(supervisor, secrets, {"engine": engine, "command": command})
    assert agent_env.get("OPENAI_API_KEY") == secrets.provider
    assert not [k for k, v in agent_env.items() if secrets.config in v or secrets.override in v]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_builtin_engine_cli_gets_its_providers_credentials_only(
    supervisor: SupervisorHarness,
) -> None:
    """The codex worker (built-in) runs its CLI with OpenAI credentials only; a stand-in
    ``codex`` on PATH records the environment it was started with."""
    bin_dir = supervisor.base / "bin"
    bin_dir.mkdir()
    dump = supervisor.base / "codex-env.json"
    fake = bin_dir / "codex"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))\nsys.exit(1)\n"
    )
    fake.chmod(0o755)
    secrets = Secrets()
    supervisor.write_config(extra=FAST, recorder=f'token = "{secrets.config}"')
    supervisor.start(
        engines=("scripted", "codex"),
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "TAKOPI__TRANSPORTS__RECORDER__API_TOKEN": secrets.override,
            "CHAT_BOT": secrets.config,
            "OPENAI_API_KEY": secrets.provider,
            "ANTHROPIC_API_KEY": "sk-ant-not-for-codex",
            "GITHUB_TOKEN": "ghp-not-for-codex",
        },
    )
    supervisor.send("/codex hello")
    env = json.loads(wait_until(lambda: dump.exists() and dump.read_text()))
    assert env.get("OPENAI_API_KEY") == secrets.provider
    assert "ANTHROPIC_API_KEY" not in env and "GITHUB_TOKEN" not in env
    assert "CHAT_BOT" not in env and not [k for k in env if k.startswith("TAKOPI__TRANSPORTS")]
    assert env.get(MARK) == supervisor.mark
    codex = supervisor.worker("engine:codex")["pid"]
    assert not holds_secret(codex, secrets.config) and not holds_secret(codex, secrets.override)
    wait_until(lambda: supervisor.finals())
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
