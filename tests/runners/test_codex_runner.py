"""codex runner against a scripted ``codex`` CLI: argv, stdin, event mapping, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken
from takopi.runners import codex
from tests.runners.conftest import FakeCli, check_contract, collect, summarize

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

THREAD = "0199a213-81c0-7800-8aa1-bbab2a035a53"
EXEC_TAIL = ["exec", "--json", "--skip-git-repo-check", "--color=never"]


def tool_stream(thread: str = THREAD) -> list[dict[str, Any]]:
    """A realistic ``RUN: echo hi`` stream (shape of codex 0.169 output)."""
    return [
        {"type": "thread.started", "thread_id": thread},
        {"type": "turn.started"},
        {
            "type": "item.completed",
            "item": {"id": "item_0", "type": "reasoning", "text": "**Running the command**"},
        },
        {
            "type": "item.completed",
            "item": {"id": "item_1", "type": "agent_message", "text": "Running it."},
        },
        {
            "type": "item.started",
            "item": {
                "id": "item_2",
                "type": "command_execution",
                "command": "/bin/bash -lc 'echo hi'",
                "aggregated_output": "",
                "exit_code": None,
                "status": "in_progress",
            },
        },
        {
            "type": "item.completed",
            "item": {
                "id": "item_2",
                "type": "command_execution",
                "command": "/bin/bash -lc 'echo hi'",
                "aggregated_output": "hi\n",
                "exit_code": 0,
                "status": "completed",
            },
        },
        {
            "type": "item.completed",
            "item": {"id": "item_3", "type": "agent_message", "text": "The output was: hi"},
        },
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 200, "cached_input_tokens": 10, "output_tokens": 40},
        },
    ]


def runner(**config: Any) -> codex.CodexRunner:
    return codex.build_runner(config, Path("/cfg/takopi.toml"))


async def test_new_run_argv_stdin_and_events(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(tool_stream(), stderr=["WARNING: proceeding, even though we could not create"])
    events = await collect(runner(), "RUN: echo hi", cwd=workdir)

    call = cli.last
    assert call["argv"] == ["-c", "notify=[]", *EXEC_TAIL, "-"]
    assert call["stdin"] == "RUN: echo hi"
    assert Path(call["cwd"]) == workdir
    check_contract(events)
    assert summarize(events) == [
        ("started", THREAD, "Codex"),
        ("action", "turn", "started", "turn_0", "turn started", None),
        ("action", "note", "completed", "item_0", "**Running the command**", True),
        ("action", "command", "started", "item_2", "/bin/bash -lc 'echo hi'", None),
        ("action", "command", "completed", "item_2", "/bin/bash -lc 'echo hi'", True),
        ("completed", True, "The output was: hi", None, THREAD),
    ]
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.usage == {"input_tokens": 200, "cached_input_tokens": 10, "output_tokens": 40}
    command = events[4]
    assert isinstance(command, ActionEvent)
    assert command.action.detail == {"exit_code": 0, "status": "completed"}
    # stderr is logged, never part of what users see
    assert all("WARNING" not in str(e) for e in events)


async def test_resume_argv_and_overrides(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(tool_stream())
    resume = ResumeToken("codex", THREAD)
    events = await collect(
        runner(profile="work", extra_args=["-c", "x=1"]),
        "again",
        resume,
        cwd=workdir,
        model="gpt-5.5",
        reasoning="high",
    )
    assert cli.last["argv"] == [
        "-c",
        "x=1",
        "--profile",
        "work",
        "--model",
        "gpt-5.5",
        "-c",
        "model_reasoning_effort=high",
        *EXEC_TAIL,
        "resume",
        THREAD,
        "-",
    ]
    assert summarize(events)[0] == ("started", THREAD, "work")
    assert summarize(events)[-1] == ("completed", True, "The output was: hi", None, THREAD)


async def test_final_answer_prefers_final_phase_and_commentary_is_a_note(
    fake_cli: Any, workdir: Path
) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            {"type": "turn.started"},
            {
                "type": "item.completed",
                "item": {
                    "id": "m0",
                    "type": "agent_message",
                    "text": "final",
                    "phase": "final_answer",
                },
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "m1",
                    "type": "agent_message",
                    "text": "thinking aloud",
                    "phase": "commentary",
                },
            },
            {
                "type": "item.completed",
                "item": {"id": "m2", "type": "agent_message", "text": "plain"},
            },
            {"type": "turn.completed", "usage": {}},
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[2:] == [
        ("action", "note", "completed", "m1", "thinking aloud", True),
        ("completed", True, "final", None, THREAD),
    ]


async def test_item_kinds(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            {"type": "turn.started"},
            {
                "type": "item.completed",
                "item": {
                    "id": "c1",
                    "type": "command_execution",
                    "command": f"cat {workdir}/src/a.py",
                    "aggregated_output": "",
                    "exit_code": 2,
                    "status": "failed",
                },
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "f1",
                    "type": "file_change",
                    "changes": [
                        {"path": f"{workdir}/a.py", "kind": "update"},
                        {"path": f"{workdir}/b.py", "kind": "add"},
                    ],
                    "status": "completed",
                },
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "f2",
                    "type": "file_change",
                    "changes": [{"path": f"p{i}", "kind": "add"} for i in range(5)],
                    "status": "failed",
                },
            },
            {
                "type": "item.started",
                "item": {"id": "w1", "type": "web_search", "query": "anyio docs"},
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "t1",
                    "type": "mcp_tool_call",
                    "server": "docs",
                    "tool": "lookup",
                    "arguments": {"q": 1},
                    "result": {
                        "content": [{"type": "text", "text": "x"}],
                        "structured_content": None,
                    },
                    "error": None,
                    "status": "completed",
                },
            },
            {
                "type": "item.updated",
                "item": {
                    "id": "todo",
                    "type": "todo_list",
                    "items": [{"text": "a", "completed": True}, {"text": "b", "completed": False}],
                },
            },
            {
                "type": "item.completed",
                "item": {
                    "id": "todo",
                    "type": "todo_list",
                    "items": [{"text": "a", "completed": True}, {"text": "b", "completed": True}],
                },
            },
            {
                "type": "item.completed",
                "item": {"id": "e1", "type": "error", "message": "model mismatch"},
            },
            {
                "type": "item.completed",
                "item": {"id": "x1", "type": "collab_tool_call", "tool": "spawn"},
            },
            {"type": "turn.completed", "usage": {"input_tokens": 1}},
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events)[2:] == [
        ("action", "command", "completed", "c1", "cat src/a.py", False),
        ("action", "file_change", "completed", "f1", "a.py, b.py", True),
        ("action", "file_change", "completed", "f2", "5 files", False),
        ("action", "web_search", "started", "w1", "anyio docs", None),
        ("action", "tool", "completed", "t1", "docs.lookup", True),
        ("action", "note", "updated", "todo", "todo 1/2: b", None),
        ("action", "note", "completed", "todo", "todo 2/2: done", True),
        ("action", "warning", "completed", "e1", "model mismatch", False),
        ("completed", True, "", None, THREAD),
    ]
    by_id = {e.action.id: e for e in events if isinstance(e, ActionEvent)}
    assert by_id["c1"].action.detail == {"exit_code": 2, "status": "failed"}
    assert by_id["f1"].action.detail["changes"] == [
        {"path": "a.py", "kind": "update"},
        {"path": "b.py", "kind": "add"},
    ]
    assert by_id["t1"].action.detail["result_summary"] == {
        "content_blocks": 1,
        "has_structured": False,
    }


async def test_turn_failed_after_stream_error(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            {"type": "turn.started"},
            {"type": "error", "message": "Reconnecting... 1/5"},
            {"type": "error", "message": "Reconnecting... 2/5"},
            {"type": "error", "message": "unexpected status 400 Bad Request: bad model"},
            {
                "type": "turn.failed",
                "error": {"message": "unexpected status 400 Bad Request: bad model"},
            },
        ],
        exit=1,
    )
    events = await collect(runner(), "FAIL400", cwd=workdir)
    check_contract(events)
    assert summarize(events) == [
        ("started", THREAD, "Codex"),
        ("action", "turn", "started", "turn_0", "turn started", None),
        ("action", "note", "started", "codex.reconnect", "Reconnecting... 1/5", None),
        ("action", "note", "updated", "codex.reconnect", "Reconnecting... 2/5", None),
        (
            "action",
            "note",
            "completed",
            "codex.note.1",
            "unexpected status 400 Bad Request: bad model",
            False,
        ),
        ("completed", False, "", "unexpected status 400 Bad Request: bad model", THREAD),
    ]


async def test_nonzero_exit_without_completion_keeps_partial_answer(
    fake_cli: Any, workdir: Path
) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            {"type": "turn.started"},
            {
                "type": "item.completed",
                "item": {"id": "m", "type": "agent_message", "text": "partial"},
            },
        ],
        stderr=["Error: something secret-ish went wrong"],
        exit=3,
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events)[-2:] == [
        ("action", "note", "completed", "codex.note.1", "codex exec failed (rc=3).", False),
        ("completed", False, "partial", "codex exec failed (rc=3).", THREAD),
    ]
    assert "secret-ish" not in repr(events)


async def test_nonzero_exit_before_any_output(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script([], stderr=["Error finding codex home"], exit=1)
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events) == [
        ("action", "note", "completed", "codex.note.1", "codex exec failed (rc=1).", False),
        ("completed", False, "", "codex exec failed (rc=1).", None),
    ]


async def test_clean_exit_without_turn_completed(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            {
                "type": "item.completed",
                "item": {"id": "m", "type": "agent_message", "text": "ok so far"},
            },
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == ("completed", True, "ok so far", None, THREAD)

    cli.script([{"type": "turn.started"}])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == (
        "completed",
        False,
        "",
        "codex exec finished but no session_id/thread_id was captured",
        None,
    )


async def test_invalid_json_unknown_event_and_huge_line(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("codex")
    huge = "x" * (2 * 1024 * 1024)
    cli.script(
        [
            {"type": "thread.started", "thread_id": THREAD},
            "this is not json {",
            {"type": "session.configured", "model": "gpt-5.5"},
            {
                "type": "item.completed",
                "item": {"id": "bad", "type": "command_execution", "exit_code": "zero"},
            },
            {"type": "item.completed", "item": {"id": "m", "type": "agent_message", "text": huge}},
            {"type": "turn.completed", "usage": {"input_tokens": 1}},
            {
                "type": "item.completed",
                "item": {"id": "late", "type": "agent_message", "text": "late"},
            },
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    assert summary[:2] == [
        ("started", THREAD, "Codex"),
        (
            "action",
            "note",
            "completed",
            "codex.note.1",
            "invalid JSON from codex; ignoring line",
            False,
        ),
    ]
    assert len(summary) == 3
    done = events[-1]
    assert isinstance(done, CompletedEvent) and done.ok and done.answer == huge


def test_resume_line_forms() -> None:
    r = runner()
    text = "codex resume first\nsome words\n  `codex resume second`  \ncodex resume a b\n"
    assert r.extract_resume(text) == ResumeToken("codex", "second")
    assert r.is_resume_line("CODEX RESUME abc")
    assert not r.is_resume_line("please codex resume abc")
    assert r.extract_resume("nothing here") is None


def test_default_extra_args() -> None:
    built = codex.BACKEND.build_runner({}, Path("x.toml"))
    assert isinstance(built, codex.CodexRunner)
    assert built.extra_args == ["-c", "notify=[]"]
