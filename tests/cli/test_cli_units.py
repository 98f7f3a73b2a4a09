"""Pure helpers of the CLI: status normalization, rendering, prompts, argv classification."""

from __future__ import annotations

import os

import pytest

from takopi.cli.ctl_render import duration, engines_table, size, table
from takopi.cli.ctl_status import build_status, normalize_worker_state
from takopi.cli.main import is_tool_invocation
from takopi.cli.prompts import Choice, ScriptedPrompter, SetupAborted, parse_yes_no, resolve_choice


@pytest.mark.parametrize(
    ("raw", "sup", "expected"),
    [
        ("ready", "running", "ready"),
        ("backoff", "running", "restarting"),
        ("exited", "running", "restarting"),
        ("exited", "stopping", "stopped"),
        ("quarantined", "running", "quarantined"),
        ("disabled", "running", "disabled"),
        ("not-started", "running", "not-started"),
        ("retired", "running", "retired"),
        ("weird", "running", "stopped"),
        (None, "running", "stopped"),
    ],
)
def test_worker_states_are_normalized(raw: object, sup: str, expected: str) -> None:
    assert normalize_worker_state(raw, sup) == expected


def test_build_status_schema(tmp_path) -> None:
    config = tmp_path / "takopi.toml"
    config.with_suffix(".lock").write_text('{"pid": 4242, "token_fingerprint": "x"}')
    raw = {
        "pid": 4242,
        "state": "running",
        "uptime_s": 12.5,
        "config_path": str(config),
        "transport": "telegram",
        "default_engine": "codex",
        "pending_deliveries": 2,
        "workers": [
            {
                "name": "engine:codex",
                "kind": "engine",
                "id": "codex",
                "state": "backoff",
                "pid": None,
                "python": "3.11.7",
                "python_executable": "/venv/bin/python",
                "restarts": 3,
                "last_exit": "killed by SIGKILL",
                "last_error": None,
                "uptime_s": None,
            }
        ],
    }
    runs = [
        {
            "run_id": "r1",
            "engine": "codex",
            "thread": "codex:t",
            "state": "running",
            "age_s": 3.2,
            "channel_id": 9,
            "message_id": 4,
            "events": 5,
        }
    ]
    doc = build_status(raw, runs, sample=False)
    assert doc["schema_version"] == 1
    assert doc["supervisor"]["lock"] == {
        "path": str(config.with_suffix(".lock")),
        "pid": 4242,
        "held": True,
    }
    assert doc["supervisor"]["pending_deliveries"] == 2
    [worker] = doc["workers"]
    assert worker == {
        "id": "codex",
        "name": "engine:codex",
        "kind": "engine",
        "state": "restarting",
        "pid": None,
        "interpreter": "/venv/bin/python",
        "python_version": "3.11.7",
        "uptime_s": None,
        "restarts": 3,
        "last_exit": "killed by SIGKILL",
        "last_error": None,
        "rss_bytes": None,
        "cpu_percent": None,
    }
    assert doc["runs"] == [
        {
            "run_id": "r1",
            "thread": "codex:t",
            "engine": "codex",
            "transport": None,
            "chat": 9,
            "message_id": 4,
            "state": "running",
            "elapsed_s": 3.2,
            "events": 5,
        }
    ]


def test_engines_section_of_the_status() -> None:
    raw = {
        "state": "running",
        "workers": [],
        "engines": [
            {"id": "codex", "status": "ok", "issue": None, "offered": True, "worker": "retired"},
            {"id": "pi", "status": "missing_cli", "issue": "pi not found", "offered": True},
            {"id": "bad", "status": "load_error", "issue": "ImportError: x", "offered": False},
            {"id": "demo", "status": "ok", "issue": "a real engine is available", "worker": None},
        ],
    }
    doc = build_status(raw, [], sample=False)
    assert doc["engines"][0] == {
        "id": "codex",
        "status": "ok",
        "issue": None,
        "offered": True,
        "worker": "retired",
    }
    assert [e["worker"] for e in doc["engines"]] == ["retired", None, None, None]
    assert [line.split()[:3] for line in engines_table(doc["engines"])] == [
        ["ENGINE", "STATUS", "WORKER"],
        ["codex", "ok", "retired"],
        ["pi", "missing_cli", "none"],
        ["bad", "load_error", "none"],
        ["demo", "ok", "none"],
    ]
    rows = engines_table(doc["engines"])
    assert "none (cannot run)" in rows[2] and "none (not an engine)" in rows[3]
    assert "none (not offered)" in rows[4]


def test_build_status_measures_live_processes() -> None:
    doc = build_status({"pid": os.getpid(), "workers": []}, [], sample=True)
    assert doc["supervisor"]["rss_bytes"] > 1024 * 1024
    assert doc["supervisor"]["cpu_percent"] >= 0


def test_render_helpers() -> None:
    assert [duration(x) for x in (5, 65, 3600 * 2 + 7 * 60, 86400 * 3 + 3600 * 4, None)] == [
        "5s",
        "1m05s",
        "2h07m",
        "3d04h",
        "-",
    ]
    assert [size(x) for x in (512, 2048, 5 * 1024 * 1024, None)] == [
        "512 B",
        "2.0 KiB",
        "5.0 MiB",
        "-",
    ]
    assert table(["A", "LONGER"], [["xx", None], ["y", 3]]) == [
        "A   LONGER",
        "xx  -",
        "y   3",
    ]


def test_prompt_parsing() -> None:
    assert parse_yes_no("", True) is True
    assert parse_yes_no("", False) is False
    assert parse_yes_no("YES", False) is True
    assert parse_yes_no("n", True) is False
    assert parse_yes_no("maybe", True) is None
    choices = [Choice("a", "first"), Choice("b", "second")]
    assert resolve_choice("2", choices, None) == "b"
    assert resolve_choice("A", choices, None) == "a"
    assert resolve_choice("", choices, "b") == "b"
    assert resolve_choice("3", choices, "a") is None


def test_scripted_prompter_reasks_and_aborts() -> None:
    io = ScriptedPrompter(["maybe", "y", "\x11"])
    assert io.confirm("go?", default=False) is True
    assert io.transcript.count("? go?") == 2
    with pytest.raises(SetupAborted):
        io.text("name")
    with pytest.raises(SetupAborted):  # out of answers = Ctrl+D
        io.secret("token")


@pytest.mark.parametrize(
    ("argv", "tool"),
    [
        ([], False),
        (["--debug"], False),
        (["codex", "--debug"], False),
        (["--transport", "config"], False),
        (["--config", "x.toml", "config", "list"], True),
        (["doctor"], True),
        (["service", "install"], True),
        (["--version"], True),
        (["codex", "--help"], True),
    ],
)
def test_tool_invocations_are_recognised(argv: list[str], tool: bool) -> None:
    assert is_tool_invocation(argv) is tool
