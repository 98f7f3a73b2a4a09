"""Delivery journal (fsync'd file, reload after a crash, compaction) and the run registry."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from takopi.supervisor.journal import INTERRUPTED_ERROR, Journal
from takopi.supervisor.registry import RunRegistry, thread_key


def test_unfinished_run_becomes_interrupted_with_resume_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.load()
    j.begin("r1", transport="console", engine="codex", origin={"channel_id": 5, "message_id": 9})
    j.started("r1", resume="abc", resume_line="`codex resume abc`")
    j.begin("r2", transport="console", engine="codex", origin={"channel_id": 5, "message_id": 10})
    j.outcome("r2", status="done", answer="hi", pending=False)
    # simulate a crash: no close, a torn last line
    with path.open("a") as fh:
        fh.write('{"op": "begi')
    j2 = Journal(path)
    interrupted = j2.load()
    assert [e.run_id for e in interrupted] == ["r1"]
    delivery = j2.pending("console")[0].delivery().to_dict()
    assert delivery["status"] == "interrupted"
    assert delivery["resume_line"] == "`codex resume abc`"
    assert delivery["channel_id"] == 5 and delivery["message_id"] == 9
    assert "`codex resume abc`" in delivery["text"]
    assert delivery["error"] == INTERRUPTED_ERROR
    # r2 was finished: compaction dropped it from the file, all but its message's key (a
    # re-offered message 5:10 is not run again)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["op"] for r in records if r["run_id"] == "r2"] == ["answered"]
    assert j2.already_answered("console", "5:10")
    assert j2.delivered("r1")
    assert j2.pending() == []
    assert Journal(path).load() == []


def test_pending_outcome_survives_restart_until_delivered(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.load()
    j.begin("r", transport="tg", engine="claude", origin={"channel_id": 1, "message_id": 2})
    j.outcome(
        "r", status="done", answer="the answer", resume_line="`claude --resume x`", pending=True
    )
    j.close()
    j2 = Journal(path)
    assert j2.load() == []
    (entry,) = j2.pending("tg")
    assert entry.answer == "the answer" and entry.status == "done"
    assert j2.pending("other") == []
    j2.delivered("r")
    assert Journal(path).load() == [] and Journal(path).pending() == []


def test_compaction_keeps_file_small(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path, compact_every=10)
    j.load()
    for i in range(50):
        j.begin(f"r{i}", transport="t", engine="e", origin={})
        j.outcome(f"r{i}", status="done", pending=False)
    j.begin("open", transport="t", engine="e", origin={})
    assert len(path.read_text().splitlines()) < 25
    assert [e.run_id for e in Journal(path).load()] == ["open"]


@pytest.mark.anyio
async def test_registry_fifo_per_thread_key() -> None:
    reg = RunRegistry()
    key = thread_key("codex", "t1")
    order: list[str] = []

    async def run(name: str, hold: anyio.Event) -> None:
        async with reg.holding(key, name):
            order.append(name)
            await hold.wait()

    gates = {n: anyio.Event() for n in "abc"}
    async with anyio.create_task_group() as tg:
        for n in "abc":
            tg.start_soon(run, n, gates[n])
            await anyio.sleep(0.01)
        assert order == ["a"]
        assert reg.queue_position(key, "c") == 2
        gates["a"].set()
        await anyio.sleep(0.01)
        assert order == ["a", "b"]
        gates["c"].set()
        gates["b"].set()
    assert order == ["a", "b", "c"]
    assert reg.queue_position(key, "a") is None


@pytest.mark.anyio
async def test_registry_cancelled_waiter_leaves_queue() -> None:
    reg = RunRegistry()
    await reg.acquire("k", "a")
    with anyio.move_on_after(0.05):
        await reg.acquire("k", "b")
    reg.release("k", "a")
    # b gave up, so c gets the key immediately
    with anyio.fail_after(1):
        await reg.acquire("k", "c")
    assert reg.queue_position("k", "c") == 0


def test_an_unreadable_journal_is_moved_aside_not_wiped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error (EIO, EACCES) once made load() compact the file into an empty one,
    losing every delivery still owed; now the file is kept beside a fresh journal."""
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.load()
    j.begin("r1", transport="tg", engine="codex", origin={"channel_id": 5})
    j.outcome("r1", status="done", answer="owed", pending=True)
    j.close()
    kept = path.read_bytes()
    real_read_bytes = Path.read_bytes

    def failing_read_bytes(self: Path) -> bytes:
        if self == path:
            raise OSError(5, "Input/output error")
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", failing_read_bytes)
    j2 = Journal(path)
    assert j2.load() == []
    monkeypatch.undo()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("journal.jsonl.unreadable-")]
    assert len(aside) == 1 and aside[0].read_bytes() == kept
    j2.begin("r2", transport="tg", engine="codex", origin={"channel_id": 5})
    assert json.loads(path.read_text().splitlines()[-1])["run_id"] == "r2"
