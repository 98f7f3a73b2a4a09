"""Atomic JSON state helpers (core-config)."""

from __future__ import annotations

import json
from pathlib import Path

from structlog.testing import capture_logs

from takopi.utils.json_state import file_signature, read_json_state, write_json_state


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "state" / "telegram_chat_prefs_state.json"
    write_json_state(path, {"chats": {"1": {"b": 1, "a": "é"}}})
    text = path.read_text(encoding="utf-8")
    assert text == (
        '{\n  "chats": {\n    "1": {\n      "a": "é",\n      "b": 1\n    }\n  },\n'
        '  "version": 1\n}\n'
    )
    assert read_json_state(path) == {"chats": {"1": {"a": "é", "b": 1}}, "version": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_missing_file(tmp_path: Path) -> None:
    assert read_json_state(tmp_path / "none.json") is None
    assert file_signature(tmp_path / "none.json") is None


def test_corrupt_file_is_backed_up_and_treated_as_empty(tmp_path: Path) -> None:
    for content in ("{not json", "[]", json.dumps({"version": 2, "chats": {}})):
        path = tmp_path / "s.json"
        path.write_text(content)
        with capture_logs() as logs:
            assert read_json_state(path) is None
        assert [e["event"] for e in logs] == ["state.corrupt"]
        assert logs[0]["log_level"] == "warning"
        backup = tmp_path / "s.json.corrupt"
        assert backup.read_text() == content
        assert not path.exists()
        write_json_state(path, {"chats": {}})
        assert read_json_state(path) == {"chats": {}, "version": 1}


def test_signature_changes_on_write(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_json_state(path, {"a": 1})
    first = file_signature(path)
    write_json_state(path, {"a": 1, "b": 22})
    assert first is not None and file_signature(path) != first
