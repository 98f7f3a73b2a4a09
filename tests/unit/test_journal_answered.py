"""Messages answered ``interrupted`` are remembered in the delivery journal (``answered``
records) so that a message its chat service offers again is not handled a second time:
found across reloads and compactions, forgotten after ``ANSWERED_RETENTION``, and never
growing the file without bound."""

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
    journal.answered(run_id, transport="telegram", key=f"7:{message_id}")
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


def test_an_answered_record_that_failed_to_write_is_rewritten_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write (disk full) keeps the key in memory and puts it on disk again with the
    next write that works (the journal's failure contract)."""
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.load()
    journal.begin("r1", transport="telegram", engine="", origin={"channel_id": 7, "message_id": 3})
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
    journal.answered("r1", transport="telegram", key="7:3")
    assert journal.write_errors == 1
    assert "answered" not in path.read_text()
    assert journal.already_answered("telegram", "7:3")
    full = False
    journal.outcome("r1", status="interrupted", pending=True)
    restarted = Journal(path)
    restarted.load()
    assert restarted.already_answered("telegram", "7:3")
