"""Journaled outcomes reach the console as they happened (issue #13's console bug: a
successful delivery after a restart was shown as ``error`` because the console read
``kind``/``ok`` while the journal sends ``status``). Both tests are fed by a real journal."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from takopi.console.loop import ConsoleLoop
from takopi.protocol import Delivery
from takopi.supervisor.journal import Journal
from takopi.supervisor.paths import resolve_paths
from tests.cli.conftest import TAKOPICTL, make_env
from tests.support.console import ConsoleSession

pytestmark = pytest.mark.timeout(120)

ANSWER = "the answer computed while no console was attached"
FRAME = "────────"


def framed(lines: list[str]) -> list[list[str]]:
    """The console's framed (final) messages: the lines after each ``──── #N ────`` bar."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith(FRAME):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
    return [[line for line in block if line.strip()] for block in blocks]


def block_with(blocks: list[list[str]], needle: str) -> list[str]:
    return next(block for block in blocks if any(needle in line for line in block))


def fill_journal(path: Path) -> None:
    """Three runs whose consumer was lost: done, error, and one cut short by a crash."""
    journal = Journal(path)
    journal.load()
    origin = {"channel_id": "console", "message_id": 1, "context_line": None}
    journal.begin("run-done", transport="console", engine="demo", origin=origin)
    journal.started("run-done", resume="t-done", resume_line="`demo resume t-done`")
    journal.outcome(
        "run-done", status="done", answer=ANSWER, resume_line="`demo resume t-done`", pending=True
    )
    journal.begin("run-error", transport="console", engine="demo", origin=origin)
    journal.outcome(
        "run-error", status="error", error="demo worker died (killed by SIGKILL)", pending=True
    )
    journal.begin("run-cut", transport="console", engine="demo", origin=origin)
    journal.started("run-cut", resume="t-cut", resume_line="`demo resume t-cut`")
    journal.close()  # no outcome for run-cut: the next load calls it interrupted


class JournalRuntime:
    """The two runtime methods the console uses for deliveries, served by a journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.acked: list[str] = []

    def pending_deliveries(self) -> list[Delivery]:
        return self.journal.deliveries("console")

    def ack_delivery(self, delivery_id: str) -> bool:
        self.acked.append(delivery_id)
        return self.journal.delivered(delivery_id)


@pytest.mark.anyio
async def test_console_prints_journaled_outcomes_with_their_status(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    fill_journal(path)
    journal = Journal(path)
    journal.load()
    runtime = JournalRuntime(journal)
    out = io.StringIO()
    loop = ConsoleLoop(runtime=runtime, inp=io.StringIO(""), out=out)
    await loop._deliver_pending()
    blocks = framed(out.getvalue().splitlines())
    assert len(blocks) == 3
    done = block_with(blocks, ANSWER)
    assert done[0] == "done · demo"
    assert done[-1] == "`demo resume t-done`"
    failed = block_with(blocks, "killed by SIGKILL")
    assert failed[0] == "error · demo"
    cut = block_with(blocks, "t-cut")
    assert cut[0] == "interrupted · demo"
    assert sorted(runtime.acked) == ["run-cut", "run-done", "run-error"]
    assert journal.pending() == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_restarted_console_delivers_a_successful_run_as_done(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = make_env(home)
    env.pop("PYTHONPATH", None)
    paths = resolve_paths(home / ".takopi" / "takopi.toml")
    fill_journal(paths.journal_path)
    session = ConsoleSession(env, home)
    try:
        blocks = framed(session.read_until("takopi console"))
        assert block_with(blocks, ANSWER)[0] == "done · demo"
        assert block_with(blocks, "killed by SIGKILL")[0] == "error · demo"
        assert block_with(blocks, "t-cut")[0] == "interrupted · demo"
        runs = _ctl_json(env, "runs")
        assert runs["pending_deliveries"] == []
    finally:
        assert session.proc.stdin is not None
        session.proc.stdin.close()
        session.proc.wait(timeout=60)


def _ctl_json(env: dict[str, str], verb: str) -> Any:
    out = subprocess.run(
        [TAKOPICTL, verb, "--json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
