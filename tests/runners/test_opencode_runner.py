"""opencode runner against a scripted ``opencode`` CLI: argv, --dir on resume, events, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken
from takopi.runners import opencode
from tests.runners.conftest import FakeCli, check_contract, collect, summarize

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.usefixtures("isolated_home")]

SESSION = "ses_dee59f237ffelFCU70Hll1rxwR"


def ev(kind: str, part: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": kind, "timestamp": 1, "sessionID": SESSION}
    if part is not None:
        data["part"] = part
    data.update(extra)
    return data


def tool(call: str, status: str, tool_name: str = "bash", **state: Any) -> dict[str, Any]:
    return ev(
        "tool_use",
        {
            "id": f"prt_{call}",
            "type": "tool",
            "tool": tool_name,
            "callID": call,
            "state": {"status": status, **state},
        },
    )


def finish(reason: str) -> dict[str, Any]:
    return ev(
        "step_finish",
        {
            "id": "prt_f",
            "type": "step-finish",
            "reason": reason,
            "cost": 0.5,
            "tokens": {
                "input": 100,
                "output": 20,
                "reasoning": 3,
                "cache": {"read": 1, "write": 2},
            },
        },
    )


def tool_stream() -> list[dict[str, Any]]:
    return [
        ev("step_start", {"id": "prt_s1", "type": "step-start"}),
        ev("text", {"id": "prt_t1", "type": "text", "text": "Running `echo hi`."}),
        tool(
            "call_1",
            "completed",
            input={"command": "echo hi"},
            output="hi\n",
            title="echo hi",
            metadata={"exit": 0, "output": "hi\n"},
        ),
        finish("tool-calls"),
        ev("step_start", {"id": "prt_s2", "type": "step-start"}),
        ev("text", {"id": "prt_t2", "type": "text", "text": "`echo hi` printed: hi"}),
        finish("stop"),
    ]


def runner(**config: Any) -> opencode.OpencodeRunner:
    return opencode.build_runner(config, Path("/cfg/takopi.toml"))


async def test_new_run_argv_and_events(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script(tool_stream(), stderr=["INFO  service=bus"])
    events = await collect(runner(), "RUN: echo hi", cwd=workdir)
    assert cli.last["argv"] == ["run", "--format", "json", "--", "RUN: echo hi"]
    assert cli.last["stdin"] == ""
    check_contract(events)
    assert summarize(events) == [
        ("started", SESSION, "opencode"),
        ("action", "command", "started", "call_1", "echo hi", None),
        ("action", "command", "completed", "call_1", "echo hi", True),
        ("completed", True, "`echo hi` printed: hi", None, SESSION),
    ]
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.usage == {
        "input_tokens": 200,
        "output_tokens": 40,
        "reasoning_tokens": 6,
        "cache_read_tokens": 2,
        "cache_write_tokens": 4,
        "cost": 1.0,
    }
    command = events[2]
    assert isinstance(command, ActionEvent)
    assert command.action.detail["exit_code"] == 0
    assert command.action.detail["output_preview"] == "hi\n"


async def test_resume_same_dir_model_override(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script(tool_stream())
    events = await collect(
        runner(model="fake/fake-model"),
        "HISTORY",
        ResumeToken("opencode", SESSION),
        cwd=workdir,
        model="fake/other",
        reasoning="high",  # only codex takes a reasoning override
    )
    assert cli.last["argv"] == [
        "run",
        "--format",
        "json",
        "--session",
        SESSION,
        "--model",
        "fake/other",
        "--",
        "HISTORY",
    ]
    assert summarize(events)[0] == ("started", SESSION, "fake/other")


async def test_resume_from_another_dir_passes_original_dir(
    fake_cli: Any, tmp_path: Path, workdir: Path
) -> None:
    """A session is bound to its directory: resuming elsewhere must pass ``--dir``."""
    cli: FakeCli = fake_cli("opencode")
    cli.script(tool_stream())
    r = runner()
    await collect(r, "first", cwd=workdir)
    other = tmp_path / "elsewhere"
    other.mkdir()
    await collect(r, "again", ResumeToken("opencode", SESSION), cwd=other)
    assert cli.last["argv"][:7] == [
        "run",
        "--format",
        "json",
        "--session",
        SESSION,
        "--dir",
        str(workdir),
    ]
    assert Path(cli.last["cwd"]) == other
    # same dir: no --dir
    await collect(r, "again", ResumeToken("opencode", SESSION), cwd=workdir)
    assert "--dir" not in cli.last["argv"]


async def test_resume_dir_from_opencode_database(
    fake_cli: Any, tmp_path: Path, workdir: Path, isolated_home: Path
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    db = isolated_home / ".local" / "share" / "opencode" / "opencode.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE session (id TEXT PRIMARY KEY, directory TEXT NOT NULL)")
    conn.execute("INSERT INTO session VALUES (?, ?)", (SESSION, str(origin)))
    conn.commit()
    conn.close()
    assert opencode.lookup_session_directory(SESSION) == str(origin)
    assert opencode.lookup_session_directory("ses_unknown") is None

    cli: FakeCli = fake_cli("opencode")
    cli.script(tool_stream())
    await collect(runner(), "again", ResumeToken("opencode", SESSION), cwd=workdir)
    argv = cli.last["argv"]
    assert argv[argv.index("--dir") + 1] == str(origin)


def test_lookup_tolerates_a_broken_database(tmp_path: Path, isolated_home: Path) -> None:
    db = isolated_home / ".local" / "share" / "opencode" / "opencode.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"not a database at all")
    assert opencode.lookup_session_directory(SESSION) is None


async def test_reasoning_is_a_note_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    """Recorded with ``--thinking`` (opencode 1.18.33): ``reasoning`` must decode."""
    cli: FakeCli = fake_cli("opencode")
    cli.script_fixture("opencode_reasoning.jsonl")
    events = await collect(runner(), "THINK", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    session = summary[0][1]
    assert summary == [
        ("started", session, "opencode"),
        (
            "action",
            "note",
            "completed",
            "prt_211a69191001cf5c8RwIPbJ1Ds",
            "Thinking about the request.",
            True,
        ),
        ("completed", True, "ok: THINK\nhello there", None, session),
    ]


async def test_permission_rejection_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script_fixture("opencode_permission_rejected.jsonl")
    events = await collect(runner(), "RUN: cat /etc/hostname", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    session = summary[0][1]
    assert summary == [
        ("started", session, "opencode"),
        ("action", "command", "started", summary[1][3], "cat /etc/hostname", None),
        ("action", "command", "completed", summary[1][3], "cat /etc/hostname", False),
        (
            "action",
            "warning",
            "completed",
            f"opencode.denied.{summary[1][3]}",
            "permission denied: bash `cat /etc/hostname`",
            False,
        ),
        ("completed", True, "Running `cat /etc/hostname`.", None, session),
    ]


async def test_error_event_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script_fixture("opencode_http400.jsonl", exit=1)
    events = await collect(runner(), "FAIL400", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    session = summary[0][1]
    assert session.startswith("ses_")
    assert summary == [
        ("started", session, "opencode"),
        ("completed", False, "", "fake model: FAIL400 requested by the prompt", session),
    ]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"error": {"name": "UnknownError", "data": {"message": "boom"}}}, "boom"),
        ({"error": {"name": "ProviderAuthError", "data": {}}}, "ProviderAuthError"),
        ({"error": {"message": "plain"}}, "plain"),
        ({"error": "just text"}, "just text"),
        ({"message": {"data": {"message": "legacy"}}}, "legacy"),
        ({}, "opencode error"),
    ],
)
async def test_error_message_shapes(
    fake_cli: Any, workdir: Path, error: dict[str, Any], message: str
) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script([ev("error", **error)], exit=1)
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == ("completed", False, "", message, SESSION)


async def test_tool_states_titles_and_unknown_events(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script(
        [
            ev("step_start", {"id": "s", "type": "step-start"}),
            ev("session.updated", {"x": 1}),
            "garbage {",
            tool("c1", "running", input={"command": "sleep 1"}),
            tool("c1", "completed", input={"command": "false"}, output="", metadata={"exit": 1}),
            tool("c2", "pending", "read", input={"filePath": f"{workdir}/a.py"}),
            tool(
                "c2",
                "completed",
                "read",
                input={"filePath": f"{workdir}/a.py"},
                output="x" * 900,
                title="a.py",
            ),
            tool(
                "c3",
                "completed",
                "edit",
                input={"filePath": f"{workdir}/b.py"},
                output="",
                title="b.py",
            ),
            tool("c4", "error", "webfetch", input={}, error="fetch failed", title="Fetch"),
            tool("c5", "completed", "mystery", input={}, title="Mystery tool title"),
            tool("c6", "completed", "task", input={"description": "explore repo"}),
            finish("tool-calls"),
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events) == [
        ("started", SESSION, "opencode"),
        (
            "action",
            "note",
            "completed",
            "opencode.note.1",
            "invalid JSON from opencode; ignoring line",
            False,
        ),
        ("action", "command", "started", "c1", "sleep 1", None),
        ("action", "command", "completed", "c1", "false", False),
        ("action", "tool", "started", "c2", "read: `a.py`", None),
        ("action", "tool", "completed", "c2", "read: `a.py`", True),
        ("action", "file_change", "started", "c3", "b.py", None),
        ("action", "file_change", "completed", "c3", "b.py", True),
        ("action", "web_search", "started", "c4", "fetch", None),
        ("action", "web_search", "completed", "c4", "fetch", False),
        ("action", "tool", "started", "c5", "Mystery tool title", None),
        ("action", "tool", "completed", "c5", "Mystery tool title", True),
        ("action", "tool", "started", "c6", "explore repo", None),
        ("action", "tool", "completed", "c6", "explore repo", True),
        # clean exit after a finished step counts as success (no stop reason)
        ("completed", True, "", None, SESSION),
    ]
    by_id = {e.action.id: e for e in events if isinstance(e, ActionEvent)}
    assert len(by_id["c2"].action.detail["output_preview"]) == 500
    assert by_id["c1"].action.detail["exit_code"] == 1
    assert by_id["c3"].action.detail["changes"] == [{"path": "b.py", "kind": "update"}]
    assert by_id["c4"].message == "fetch failed"


async def test_stream_end_and_exit_codes(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("opencode")
    cli.script([ev("step_start", {"id": "s"}), ev("text", {"id": "t", "text": "half"})])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == (
        "completed",
        False,
        "half",
        "opencode finished without a result event",
        SESSION,
    )

    cli.script([])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events) == [
        ("completed", False, "", "opencode finished but no session_id was captured", None)
    ]

    cli.script([ev("step_start", {"id": "s"})], stderr=["fatal: something"], exit=7)
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-2:] == [
        ("action", "note", "completed", "opencode.note.1", "opencode failed (rc=7).", False),
        ("completed", False, "", "opencode failed (rc=7).", SESSION),
    ]
    assert "fatal" not in repr(events)


def test_resume_line_forms() -> None:
    r = runner()
    text = "opencode run -s ses_first\nopencode run --session ses_second\nopencode --session abc"
    assert r.extract_resume(text) == ResumeToken("opencode", "ses_second")
    assert not r.is_resume_line("opencode --session notases")


def test_model_is_stripped() -> None:
    assert runner(model=" a/b ").model == "a/b"
