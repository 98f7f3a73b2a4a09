"""Messages a run began for (an ``interrupted`` reply included) are remembered by the
delivery journal so that a message its chat service offers again is not handled a second
time: found across reloads and compactions (``answered`` records outlive the run's entry),
forgotten after ``ANSWERED_RETENTION``, and never growing the file without bound."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

import takopi.supervisor.journal as journal_module
from takopi.supervisor.journal import ANSWERED_RETENTION, Journal

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _owe_interrupted(journal: Journal, run_id: str, message_id: int) -> None:
    """What the run service journals for a message it answers ``interrupted``."""
    origin = {"channel_id": 7, "message_id": message_id}
    journal.begin(run_id, transport="telegram", engine="", origin=origin)
    journal.outcome(run_id, status="interrupted", error="send it again", pending=True)


def test_an_answered_message_is_found_after_delivery_reload_and_compaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    clock = Clock()
    journal = Journal(path, compact_every=1, clock=clock)
    journal.load()
    _owe_interrupted(journal, "r1", 5)
    assert journal.already_answered("telegram", "7:5")
    assert not journal.already_answered("telegram", "7:6")  # another message
    assert not journal.already_answered("console", "7:5")  # another transport's
    assert journal.delivered("r1")  # the entry is finished and compacted away...
    assert "begin" not in [r["op"] for r in _records(path)]
    assert journal.already_answered("telegram", "7:5")  # ...its key is not
    restarted = Journal(path, clock=clock)
    assert restarted.load() == []
    assert restarted.pending() == []
    assert restarted.already_answered("telegram", "7:5")
    (record,) = _records(path)
    assert record["op"] == "answered" and record["run_id"] == "r1"


def test_an_answered_message_is_forgotten_after_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    clock = Clock()
    journal = Journal(path, clock=clock)
    journal.load()
    _owe_interrupted(journal, "old", 1)
    clock.now += ANSWERED_RETENTION - HOUR
    _owe_interrupted(journal, "new", 2)
    journal.delivered("old")
    journal.delivered("new")
    assert journal.already_answered("telegram", "7:1")
    clock.now += 2 * HOUR  # "old" is past the retention, "new" is not
    assert not journal.already_answered("telegram", "7:1")
    assert journal.already_answered("telegram", "7:2")
    # Telegram keeps an unconfirmed update 24 h at most: twice that is kept, no more.
    assert ANSWERED_RETENTION >= 48 * HOUR
    restarted = Journal(path, clock=clock)
    restarted.load()  # compacts: the expired key leaves the file
    assert [r["key"] for r in _records(path)] == ["7:2"]
    assert restarted.answered_count() == 1
    assert restarted.already_answered("telegram", "7:2")


def test_answered_keys_do_not_grow_the_journal_without_bound(tmp_path: Path) -> None:
    """A week of messages answered ``interrupted`` (each delivered): the file and memory keep
    only the last retention period's keys."""
    path = tmp_path / "journal.jsonl"
    clock = Clock()
    journal = Journal(path, compact_every=16, clock=clock)
    journal.load()
    per_hour = 4
    for hour in range(7 * 24):
        for i in range(per_hour):
            run_id = f"r{hour}-{i}"
            _owe_interrupted(journal, run_id, hour * per_hour + i)
            journal.delivered(run_id)
        clock.now += HOUR
    kept = (ANSWERED_RETENTION / HOUR + 1) * per_hour
    assert journal.answered_count() <= kept + 16
    assert len(_records(path)) <= kept + 4 * 16
    restarted = Journal(path, clock=clock)
    restarted.load()
    assert restarted.answered_count() <= kept
    newest = 7 * 24 * per_hour - 1
    assert restarted.already_answered("telegram", f"7:{newest}")
    assert not restarted.already_answered("telegram", "7:0")


def test_a_damaged_answered_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        '{"op":"answered","run_id":"a","ts":1,"transport":"telegram"}\n'
        '{"op":"answered","run_id":"b","ts":1,"transport":"telegram","key":"7:9"}\n'
    )
    journal = Journal(path, clock=lambda: 2.0)
    journal.load()
    assert journal.skipped_records == 1
    assert journal.answered_count() == 1
    assert journal.already_answered("telegram", "7:9")


def test_a_run_answers_its_message_and_an_address_without_one_answers_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.load()
    origin = {"channel_id": 7, "message_id": 4, "progress_message_id": 5}
    journal.begin("run", transport="telegram", engine="codex", origin=origin)
    journal.begin("no-message", transport="telegram", engine="codex", origin={"channel_id": 7})
    journal.outcome("run", status="done", answer="ok", pending=False)  # delivered live
    journal.outcome("no-message", status="done", answer="ok", pending=False)
    journal.compact()
    assert journal.already_answered("telegram", "7:4")
    assert not journal.already_answered("telegram", "7:5")  # the progress message
    assert journal.answered_count() == 1
    assert [(r["op"], r["run_id"]) for r in _records(path)] == [("answered", "run")]


def test_answered_keys_missed_by_a_failed_write_are_rewritten_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (disk full) after a run's entry finished: the rewrite that puts
    the journal back on disk keeps the message's key (the journal's failure contract)."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, compact_every=1)
    journal.load()
    journal.begin("r1", transport="telegram", engine="", origin={"channel_id": 7, "message_id": 3})
    journal.outcome("r1", status="interrupted", pending=True)
    full = True
    real_write = os.write

    class _Os:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def write(fd: int, data: Any) -> int:
            if full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

    monkeypatch.setattr(journal_module, "os", _Os())
    assert journal.delivered("r1")  # finished in memory only
    assert journal.write_errors == 1
    assert journal.already_answered("telegram", "7:3")
    full = False
    journal.begin("r2", transport="telegram", engine="", origin={"channel_id": 7, "message_id": 8})
    restarted = Journal(path)
    restarted.load()
    assert restarted.already_answered("telegram", "7:3")
    assert restarted.already_answered("telegram", "7:8")
    assert [e.run_id for e in restarted.pending()] == ["r2"]
