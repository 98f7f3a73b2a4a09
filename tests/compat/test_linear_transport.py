"""takopi-linear 0.1.0, a published transport plugin, in its own managed venv and worker.

The plugin is installed by ``takopi plugins install`` (from PyPI, Python 3.13 with
``--ignore-requires-python``: it declares >=3.14). Its world is real except for Linear
itself: a throwaway PostgreSQL cluster holds the kai-gateway ``events`` table it polls, and
the fake Linear GraphQL API (``tests/fakes/linear_api.py``) on 127.0.0.1 receives its agent
activities. The engine is takopi's codex runner driving the scripted fake ``codex`` CLI.

- an ``AgentSessionEvent`` row in -> the plugin claims it, runs codex, and posts the answer
  as a ``response`` activity in the agent session (event marked ``done``);
- kill -9 of the transport worker while its run is in flight: the run finishes in the engine
  worker, the supervisor journals it, and takopi delivers it through the *plugin's own*
  transport and presenter in the restarted worker (the plugin knows nothing of the journal).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.compat.postgres import PostgresCluster
from tests.fakes.linear_api import FakeLinearApi
from tests.plugin_envs.conftest import TAKOPI
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

FAKE_CODEX = Path(__file__).resolve().parents[1] / "telegram" / "fake_codex.py"
EVENTS_TABLE = """
create table events (
  id uuid primary key default gen_random_uuid(),
  source text not null,
  event_type text not null,
  external_id text,
  payload jsonb not null,
  status text not null default 'pending',
  error text,
  created_at timestamptz not null default now(),
  processed_at timestamptz
)
"""


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(dbname="gateway").start()
    try:
        cluster.psql(EVENTS_TABLE)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def linear_api() -> Iterator[FakeLinearApi]:
    api = FakeLinearApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


class LinearSystem:
    """Supervisor + linear transport worker + codex engine worker, and their surroundings."""

    def __init__(
        self, harness: SupervisorHarness, postgres: PostgresCluster, api: FakeLinearApi
    ) -> None:
        self.harness = harness
        self.postgres = postgres
        self.api = api
        self.codex_dir = harness.base / "codex-state"

    def install_and_start(self) -> None:
        base = self.harness.base
        config = self.harness.config_path
        config.write_text(
            textwrap.dedent(
                f"""\
                transport = "linear"
                default_engine = "codex"

                [transports.linear]
                oauth_token = "{self.api.token}"
                app_id = "app-test"
                gateway_database_url = "{self.postgres.url}"
                api_url = "{self.api.url}"
                poll_interval = 0.5
                plan_coalesce_s = 0.0
                ephemeral_activity_coalesce_s = 0.0

                [supervisor]
                ping_interval = 0.5
                ping_timeout = 5.0
                shutdown_grace = 2.0
                """
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKOPI", "VIRTUAL_ENV"))}
        proc = subprocess.run(
            [
                TAKOPI,
                "plugins",
                "install",
                "takopi-linear==0.1.0",
                "--python",
                "3.13",
                "--ignore-requires-python",
                "--config-path",
                str(config),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.python = tomllib.loads(config.read_text())["plugins"]["linear"]["python"]
        assert self.python.startswith(str(base / "plugin-envs" / "takopi-linear"))

        bin_dir = base / "bin"
        bin_dir.mkdir()
        codex = bin_dir / "codex"
        codex.write_text(f"#!{sys.executable}\n" + FAKE_CODEX.read_text())
        codex.chmod(codex.stat().st_mode | stat.S_IEXEC)
        self.codex_dir.mkdir()
        self.harness.start(
            engines=("codex",),
            env={
                "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
                "FAKE_CODEX_DIR": str(self.codex_dir),
                "PYTHONPATH": "",  # the managed venv must stand on its own
            },
            wait_ready=False,
        )
        wait_until(self._transport_ready, timeout=60)

    def _transport_ready(self) -> bool:
        proc = self.harness.proc
        assert proc is not None
        if proc.poll() is not None:
            raise AssertionError(f"supervisor exited {proc.returncode}: {self.harness.log()}")
        status = self.harness.try_status()
        if status is None:
            return False
        return any(w["kind"] == "transport" and w["state"] == "ready" for w in status["workers"])

    def transport(self) -> dict[str, Any]:
        status = self.harness.control("status")
        return next(w for w in status["workers"] if w["kind"] == "transport")

    def codex_calls(self) -> list[dict[str, Any]]:
        path = self.codex_dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def post_event(self, action: str, payload: dict[str, Any]) -> str:
        body = json.dumps({"type": "AgentSessionEvent", "action": action, **payload})
        rows = self.postgres.rows(
            "insert into events (source, event_type, payload) values "
            f"('linear', 'AgentSessionEvent', '{body.replace(chr(39), chr(39) * 2)}'::jsonb) "
            "returning id"
        )
        return rows[0][0]

    def event_status(self, event_id: str) -> str:
        return self.postgres.rows(f"select status from events where id = '{event_id}'")[0][0]

    def responses(self, session_id: str) -> list[str]:
        return [a.body for a in self.api.session_activities(session_id) if a.type == "response"]


@pytest.fixture
def linear(
    supervisor: SupervisorHarness, postgres: PostgresCluster, linear_api: FakeLinearApi
) -> LinearSystem:
    system = LinearSystem(supervisor, postgres, linear_api)
    system.install_and_start()
    return system


def test_issue_delegated_in_linear_is_answered_by_the_agent(linear: LinearSystem) -> None:
    api = linear.api
    api.add_issue("issue-1", identifier="ENG-1", title="Fix the login bug", session_id="sess-1")
    event = linear.post_event(
        "created",
        {
            "agentSession": {
                "id": "sess-1",
                "issue": {"id": "issue-1", "title": "Fix the login bug"},
            },
            "agentActivity": {"body": "please look at it"},
        },
    )
    answer = api.wait_for(lambda: linear.responses("sess-1"), timeout=60)[0]
    assert answer.startswith("done"), answer
    assert "ok: Linear issue: ENG-1" in answer and "please look at it" in answer, answer
    wait_until(lambda: linear.event_status(event) == "done", timeout=30)

    prompt = linear.codex_calls()[0]["prompt"]
    assert prompt.startswith("Linear issue: ENG-1\nURL: https://linear.example/issue/ENG-1")
    assert "Fix the login bug\n\nplease look at it" in prompt
    thoughts = [a.body for a in api.session_activities("sess-1") if a.type == "thought"]
    assert "Acknowledged. Starting…" in thoughts
    # the issue moved to started, then to done; the session plan ended completed
    states = [fields.get("stateId") for _, fields in api.issue_updates]
    assert states[:1] == ["state-started"] and states[-1] == "state-done", api.issue_updates
    wait_until(lambda: api.plans.get("sess-1", [{}])[-1].get("status") == "completed", 20)
    assert api.unknown == [] and api.unauthorized == 0

    info = linear.transport()
    assert info["python"].startswith("3.13"), info
    assert psutil.Process(info["pid"]).cmdline()[0] == linear.python
    assert linear.harness.stop() == 0
    assert_no_leftovers(linear.harness)


def test_transport_worker_killed_mid_run_still_delivers(linear: LinearSystem) -> None:
    api = linear.api
    api.add_issue("issue-2", identifier="ENG-2", title="Slow task", session_id="sess-2")
    event = linear.post_event(
        "prompted",
        {"agentSession": {"id": "sess-2"}, "agentActivity": {"body": "wait gate_linear"}},
    )
    wait_until(linear.codex_calls, timeout=60)
    api.wait_for(
        lambda: any(a.body.startswith("Acknowledged") for a in api.session_activities("sess-2"))
    )
    old = linear.transport()
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: (w := linear.transport())["pid"] != old["pid"] and w["state"] == "ready", 60)
    # the run was still going when its transport died: it finishes now
    (linear.codex_dir / "gate_linear").write_text("open")
    answer = api.wait_for(lambda: linear.responses("sess-2"), timeout=60)
    assert len(answer) == 1, answer
    assert answer[0].startswith("done"), answer
    assert "ok: wait gate_linear" in answer[0]
    assert "codex resume thread-" in answer[0]  # the journal keeps the resume line
    assert len(linear.codex_calls()) == 1  # delivered, not run again
    # the dead worker had claimed the event; nobody will mark it done
    assert linear.event_status(event) == "processing"
    # delivered once: later polls of the journal find nothing more to send
    pending = linear.harness.control("runs")["pending_deliveries"]
    assert pending == [], pending
    assert len(linear.responses("sess-2")) == 1
    assert linear.harness.stop() == 0
    assert_no_leftovers(linear.harness)
