"""claude runner against a scripted ``claude`` CLI: argv, env, event mapping, denials, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent
from takopi.runners import claude
from tests.runners.conftest import FakeCli, check_contract, collect, summarize

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SESSION = "62423461-cbc4-4820-a95c-f9b74cdff29e"
BASE_ARGV = ["-p", "--output-format", "stream-json", "--verbose"]
TOOLS = ["--allowedTools", "Bash,Read,Edit,Write"]


def init(session: str = SESSION) -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/repo",
        "session_id": session,
        "tools": ["Bash", "Read"],
        "mcp_servers": [],
        "model": "claude-opus-4-8[1m]",
        "permissionMode": "default",
        "apiKeySource": "none",
        "output_style": "default",
        "uuid": "u0",
    }


def assistant(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-8",
            "content": list(blocks),
            "stop_reason": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
        "parent_tool_use_id": parent,
        "session_id": SESSION,
    }


def tool_result(tool_id: str, content: Any, *, is_error: bool = False) -> dict[str, Any]:
    return {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_id,
                    "content": content,
                    "is_error": is_error,
                }
            ],
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "tool_use_result": {"stdout": "hi", "stderr": ""},
    }


def result(text: str | None, *, is_error: bool = False, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": is_error,
        "duration_ms": 300,
        "duration_api_ms": 100,
        "num_turns": 2,
        "result": text,
        "session_id": SESSION,
        "total_cost_usd": 0.002,
        "usage": {"input_tokens": 200, "output_tokens": 40},
        "permission_denials": [],
    }
    data.update(extra)
    return data


def tool_stream() -> list[dict[str, Any]]:
    return [
        init(),
        assistant({"type": "text", "text": "Running `echo hi`."}),
        assistant(
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "Bash",
                "input": {"command": "echo hi", "description": "Run echo hi"},
            }
        ),
        tool_result("toolu_1", "hi"),
        assistant({"type": "text", "text": "`echo hi` printed: hi"}),
        result("`echo hi` printed: hi"),
    ]


def runner(**config: Any) -> claude.ClaudeRunner:
    return claude.build_runner(config, Path("/cfg/takopi.toml"))


async def test_new_run_argv_env_and_events(
    fake_cli: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "kept")
    cli: FakeCli = fake_cli("claude")
    cli.script(tool_stream(), stderr=["some claude noise"])
    events = await collect(runner(), "RUN: echo hi", cwd=workdir)

    call = cli.last
    assert call["argv"] == [*BASE_ARGV, *TOOLS, "--", "RUN: echo hi"]
    assert call["stdin"] == ""
    assert "ANTHROPIC_API_KEY" not in call["env"]
    assert call["env"]["ANTHROPIC_AUTH_TOKEN"] == "kept"
    assert Path(call["cwd"]) == workdir
    check_contract(events)
    assert summarize(events) == [
        ("started", SESSION, "claude"),
        ("action", "command", "started", "toolu_1", "echo hi", None),
        ("action", "command", "completed", "toolu_1", "echo hi", True),
        ("completed", True, "`echo hi` printed: hi", None, SESSION),
    ]
    started = events[0]
    assert isinstance(started, StartedEvent)
    assert started.meta is not None
    assert started.meta["cwd"] == "/repo"
    assert started.meta["permissionMode"] == "default"
    assert started.meta["apiKeySource"] == "none"
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.usage == {
        "total_cost_usd": 0.002,
        "duration_ms": 300,
        "duration_api_ms": 100,
        "num_turns": 2,
        "usage": {"input_tokens": 200, "output_tokens": 40},
    }
    finished = events[2]
    assert isinstance(finished, ActionEvent)
    assert finished.action.detail["result_preview"] == "hi"
    assert finished.action.detail["result_len"] == 2
    assert finished.action.detail["is_error"] is False
    assert finished.action.detail["name"] == "Bash"
    assert "some claude noise" not in repr(events)


async def test_resume_argv_with_every_option(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script(tool_stream())
    r = runner(
        model="claude-sonnet-4-5",
        allowed_tools=["Bash", "Read"],
        dangerously_skip_permissions=True,
        permission_mode="acceptEdits",
    )
    events = await collect(r, "again", ResumeToken("claude", SESSION), cwd=workdir)
    assert cli.last["argv"] == [
        *BASE_ARGV,
        "--resume",
        SESSION,
        "--model",
        "claude-sonnet-4-5",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Bash,Read",
        "--dangerously-skip-permissions",
        "--",
        "again",
    ]
    assert summarize(events)[0] == ("started", SESSION, "claude-sonnet-4-5")

    # a /model override beats the configured model; reasoning is not passed to claude
    await collect(r, "x", cwd=workdir, model="opus", reasoning="high")
    argv = cli.last["argv"]
    assert argv[argv.index("--model") + 1] == "opus"
    assert "high" not in " ".join(argv)


async def test_allowed_tools_disabled_and_api_billing(
    fake_cli: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-billing")
    cli: FakeCli = fake_cli("claude")
    cli.script(tool_stream())
    await collect(runner(allowed_tools=[], use_api_billing=True), "-dash prompt", cwd=workdir)
    assert cli.last["argv"] == [*BASE_ARGV, "--", "-dash prompt"]
    assert cli.last["env"]["ANTHROPIC_API_KEY"] == "sk-billing"


async def test_denied_tool_result_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    """Recorded from claude 2.1.197: ``touch f`` blocked outside the allowed directories."""
    cli: FakeCli = fake_cli("claude")
    cli.script_fixture("claude_denied_blocked.jsonl")
    events = await collect(runner(allowed_tools=[]), "RUN: touch f", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    session = summary[0][1]
    answer = (
        "`touch f` printed: touch in '/tmp/takopi-fixture/work/f' was blocked. For security, "
        "Claude Code may only create or modify files in the allowed working directories for "
        "this session: '/tmp/takopi-fixture/work'."
    )
    assert summary == [
        ("started", session, "claude"),
        ("action", "command", "started", "toolu_1", "touch f", None),
        ("action", "command", "completed", "toolu_1", "touch f", False),
        (
            "action",
            "warning",
            "completed",
            "claude.denied.toolu_1",
            "permission denied: Bash `touch f`",
            False,
        ),
        ("completed", True, answer + "\n\npermission denied: Bash `touch f`", None, session),
    ]
    warning = events[3]
    assert isinstance(warning, ActionEvent)
    assert warning.level == "warning"
    assert warning.action.detail["tool_name"] == "Bash"
    assert warning.action.detail["tool_input"]["command"] == "touch f"


async def test_denied_in_dont_ask_mode_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script_fixture("claude_denied_dontask.jsonl")
    events = await collect(runner(permission_mode="dontAsk"), "RUN: rm", cwd=workdir)
    check_contract(events)
    assert "--permission-mode" in cli.last["argv"]
    titles = [
        (e.action.kind, e.action.title)
        for e in events
        if isinstance(e, ActionEvent) and e.action.kind == "warning"
    ]
    assert titles == [("warning", "permission denied: Bash `rm -rf /tmp/takopi-fixture/work/zz`")]


async def test_permission_denials_only_in_result(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script(
        [
            init(),
            assistant(
                {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": "Write",
                    "input": {"file_path": f"{workdir}/notes.md", "content": "x"},
                }
            ),
            tool_result("toolu_9", "Error: something else went wrong", is_error=True),
            result(
                "I could not write the file.",
                permission_denials=[
                    {
                        "tool_name": "Write",
                        "tool_use_id": "toolu_9",
                        "tool_input": {"file_path": f"{workdir}/notes.md", "content": "x"},
                    },
                    {"tool_name": "WebFetch", "tool_input": {"url": "https://example.com"}},
                ],
            ),
        ]
    )
    events = await collect(runner(), "write notes", cwd=workdir)
    check_contract(events)
    assert summarize(events) == [
        ("started", SESSION, "claude"),
        ("action", "file_change", "started", "toolu_9", "notes.md", None),
        ("action", "file_change", "completed", "toolu_9", "notes.md", False),
        (
            "action",
            "warning",
            "completed",
            "claude.denied.toolu_9",
            "permission denied: Write `notes.md`",
            False,
        ),
        (
            "action",
            "warning",
            "completed",
            "claude.denied.2",
            "permission denied: WebFetch `https://example.com`",
            False,
        ),
        (
            "completed",
            True,
            "I could not write the file.\n\npermission denied: Write `notes.md`\n"
            "permission denied: WebFetch `https://example.com`",
            None,
            SESSION,
        ),
    ]
    started_write = events[1]
    assert isinstance(started_write, ActionEvent)
    assert started_write.action.detail["changes"] == [{"path": "notes.md", "kind": "update"}]


async def test_http_400_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script_fixture("claude_http400.jsonl", exit=1)
    events = await collect(runner(), "FAIL400", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    assert summary == [
        ("started", summary[0][1], "claude"),
        (
            "completed",
            False,
            "",
            "API Error: 400 fake model: FAIL400 requested by the prompt",
            summary[0][1],
        ),
    ]


async def test_resume_from_wrong_cwd_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script_fixture("claude_resume_wrong_cwd.jsonl", exit=1)
    resume = ResumeToken("claude", SESSION)
    events = await collect(runner(), "HISTORY", resume, cwd=workdir)
    assert summarize(events) == [
        (
            "completed",
            False,
            "",
            "claude run failed (error_during_execution): "
            f"No conversation found with session ID: {SESSION}",
            SESSION,
        )
    ]


async def test_thinking_subagent_text_unknown_and_invalid_lines(
    fake_cli: Any, workdir: Path
) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script(
        [
            "Claude Code update available!",
            init(),
            {"type": "stream_event", "event": {"type": "content_block_delta"}},
            {"type": "system", "subtype": "compact_boundary"},
            {"type": "rate_limit_event", "info": {}},
            assistant({"type": "thinking", "thinking": "  Let me think.  ", "signature": "s"}),
            assistant({"type": "thinking", "thinking": "", "signature": "s"}),
            assistant(
                {
                    "type": "tool_use",
                    "id": "toolu_t",
                    "name": "Task",
                    "input": {"description": "explore", "prompt": "p"},
                }
            ),
            assistant({"type": "text", "text": "sub-agent chatter"}, parent="toolu_t"),
            tool_result(
                "toolu_t", [{"type": "text", "text": "found"}, {"type": "text", "text": "it"}]
            ),
            tool_result("toolu_unknown", "orphan"),
            assistant({"type": "text", "text": "final words"}),
            result(None),
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events) == [
        ("started", SESSION, "claude"),
        ("action", "note", "completed", "claude.thinking.1", "Let me think.", True),
        ("action", "subagent", "started", "toolu_t", "explore", None),
        ("action", "subagent", "completed", "toolu_t", "explore", True),
        ("action", "tool", "completed", "toolu_unknown", "tool result", True),
        ("completed", True, "final words", None, SESSION),
    ]
    task_done = events[3]
    assert isinstance(task_done, ActionEvent)
    assert task_done.action.detail["result_preview"] == "found\nit"


async def test_nonzero_exit_without_result(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script([init(), assistant({"type": "text", "text": "partial"})], exit=2)
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events)[-2:] == [
        ("action", "note", "completed", "claude.note.1", "claude failed (rc=2).", False),
        ("completed", False, "", "claude failed (rc=2).", SESSION),
    ]


async def test_clean_exit_without_result(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("claude")
    cli.script([init(), assistant({"type": "text", "text": "partial"})])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == (
        "completed",
        False,
        "partial",
        "claude finished without a result event",
        SESSION,
    )
    cli.script([])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events) == [
        ("completed", False, "", "claude finished but no session_id was captured", None)
    ]


async def test_huge_tool_result_line(fake_cli: Any, workdir: Path) -> None:
    big = "y" * (3 * 1024 * 1024)
    cli: FakeCli = fake_cli("claude")
    cli.script(
        [
            init(),
            assistant(
                {
                    "type": "tool_use",
                    "id": "t",
                    "name": "Read",
                    "input": {"file_path": "/x/big.txt"},
                }
            ),
            tool_result("t", big),
            result("read it"),
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    assert summarize(events)[1:] == [
        ("action", "tool", "started", "t", "read: `/x/big.txt`", None),
        ("action", "tool", "completed", "t", "read: `/x/big.txt`", True),
        ("completed", True, "read it", None, SESSION),
    ]
    done = events[2]
    assert isinstance(done, ActionEvent)
    assert done.action.detail["result_len"] == len(big)


def test_resume_line_forms() -> None:
    r = runner()
    assert r.extract_resume("claude -r aaa\n`claude --resume bbb`") == ResumeToken("claude", "bbb")
    assert r.extract_resume("claude --session aaa") is None
    assert r.is_resume_line("  claude -r abc  ")


def test_allowed_tools_none_disables_the_flag() -> None:
    built = claude.BACKEND.build_runner({"allowed_tools": None}, Path("x.toml"))
    assert isinstance(built, claude.ClaudeRunner)
    assert built.allowed_tools is None
