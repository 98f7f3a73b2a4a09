"""pi runner against a scripted ``pi`` CLI: session paths, full-id resume tokens, events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent
from takopi.runners import pi
from tests.runners.conftest import FakeCli, check_contract, collect, summarize

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60), pytest.mark.usefixtures("isolated_home")]

# Two UUIDv7 ids made ~1 s apart: same 8-hex prefix (the reference's "short id").
SESSION_A = "01a211a6-10a8-7786-9fb8-afcca4ba4bdc"
SESSION_B = "01a211a6-14f0-7123-8abc-0123456789ab"


def header(session: str = SESSION_A, cwd: str = "/repo") -> dict[str, Any]:
    return {
        "type": "session",
        "version": 3,
        "id": session,
        "timestamp": "2026-11-25T07:40:25.641Z",
        "cwd": cwd,
    }


def assistant_end(
    *blocks: dict[str, Any], stop: str = "stop", error: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": list(blocks),
        "api": "openai-completions",
        "provider": "fake",
        "model": "fake-model",
        "usage": {"input": 10, "output": 2, "totalTokens": 12},
        "stopReason": stop,
    }
    if error is not None:
        message["errorMessage"] = error
    return {"type": "message_end", "message": message}


def runner(**config: Any) -> pi.PiRunner:
    return pi.build_runner(config, Path("/cfg/takopi.toml"))


async def test_new_run_session_path_env_and_events(
    fake_cli: Any, workdir: Path, isolated_home: Path
) -> None:
    """Replays the recorded ``RUN: echo hi`` stream of pi 0.73.1."""
    cli: FakeCli = fake_cli("pi")
    cli.script_recorded("pi_tool")
    events = await collect(runner(), "please\nRUN: echo hi", cwd=workdir)

    call = cli.last
    argv = call["argv"]
    assert argv[:3] == ["--print", "--mode", "json"]
    assert argv[3] == "--session"
    assert argv[5:] == ["please\nRUN: echo hi"]
    session_path = Path(argv[4])
    expected_dir = isolated_home / ".pi" / "agent" / "sessions" / pi.session_dir_name(str(workdir))
    assert session_path.parent == expected_dir
    assert expected_dir.is_dir()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{6}\+00-00_[0-9a-f]{32}\.jsonl", session_path.name
    )
    assert call["env"]["NO_COLOR"] == "1"
    assert call["env"]["CI"] == "1"
    assert call["stdin"] == ""

    check_contract(events)
    assert summarize(events) == [
        ("started", "01a211a6-25a2-7310-8802-081e964fa698", "pi"),
        ("action", "command", "started", "call_3", "echo hi", None),
        ("action", "command", "completed", "call_3", "echo hi", True),
        ("completed", True, "`echo hi` printed: hi", None, "01a211a6-25a2-7310-8802-081e964fa698"),
    ]
    started = events[0]
    assert isinstance(started, StartedEvent)
    assert started.meta is not None
    assert started.meta["session_path"] == str(session_path)
    assert started.meta["cwd"] == "/tmp/takopi-rec/work"
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.usage is not None and done.usage["totalTokens"] == 120
    tool_done = events[2]
    assert isinstance(tool_done, ActionEvent)
    assert tool_done.action.detail["result"] == {"content": [{"type": "text", "text": "hi\n"}]}


def test_session_dir_name() -> None:
    assert pi.session_dir_name("/home/me/repo") == "--home-me-repo--"
    assert pi.session_dir_name("C:\\Users\\me\\repo") == "--C--Users-me-repo--"


async def test_agent_dir_from_env(
    fake_cli: Any, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_dir = tmp_path / "pi-agent"
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(agent_dir))
    monkeypatch.setenv("NO_COLOR", "0")
    cli: FakeCli = fake_cli("pi")
    cli.script_recorded("pi_new")
    await collect(runner(), "hello there", cwd=workdir)
    session_path = Path(cli.last["argv"][cli.last["argv"].index("--session") + 1])
    assert session_path.parent.parent == agent_dir / "sessions"
    assert cli.last["env"]["NO_COLOR"] == "0"  # setdefault: an explicit value wins


async def test_full_ids_never_collide(fake_cli: Any, workdir: Path) -> None:
    """Sessions started within a minute share their first 8 hex digits; tokens must not."""
    cli: FakeCli = fake_cli("pi")
    r = runner()
    tokens = []
    for session in (SESSION_A, SESSION_B):
        cli.script(
            [
                header(session),
                assistant_end({"type": "text", "text": "hi"}),
                {"type": "agent_end", "messages": []},
            ]
        )
        events = await collect(r, "hello", cwd=workdir)
        check_contract(events)
        done = events[-1]
        assert isinstance(done, CompletedEvent) and done.resume is not None
        tokens.append(done.resume.value)
    assert tokens == [SESSION_A, SESSION_B]
    assert r.format_resume(ResumeToken("pi", SESSION_A)) == f"`pi --session {SESSION_A}`"


async def test_resume_by_full_id_with_options(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("pi")
    cli.script_recorded("pi_resume")
    resume = ResumeToken("pi", "01a211a6-10a8-7786-9fb8-afcca4ba4bdc")
    r = runner(extra_args=["--thinking", "off"], provider="fake", model="fake-model")
    events = await collect(r, "HISTORY", resume, cwd=workdir)
    assert cli.last["argv"] == [
        "--thinking",
        "off",
        "--print",
        "--mode",
        "json",
        "--provider",
        "fake",
        "--model",
        "fake-model",
        "--session",
        resume.value,
        "HISTORY",
    ]
    check_contract(events)
    assert summarize(events) == [
        ("started", resume.value, "pi"),
        ("completed", True, "HISTORY: 1 earlier prompt(s)\n- hello there", None, resume.value),
    ]

    # a path token from an older resume line, a /model override, a dash prompt
    path_token = ResumeToken("pi", "/home/me/.pi/agent/sessions/--x--/a b.jsonl")
    cli.script([header(SESSION_B), {"type": "agent_end", "messages": []}])
    events = await collect(
        r, "-v please", path_token, cwd=workdir, model="other", reasoning="xhigh"
    )
    argv = cli.last["argv"]
    assert not any("xhigh" in arg for arg in argv)
    assert argv[argv.index("--model") + 1] == "other"
    assert argv[-3:] == ["--session", path_token.value, " -v please"]
    assert summarize(events)[0] == ("started", path_token.value, "pi")


async def test_http_400_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    """pi exits 0 on a provider error; the assistant message carries it."""
    cli: FakeCli = fake_cli("pi")
    cli.script_recorded("pi_error")
    events = await collect(runner(), "FAIL400", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    assert summary == [
        ("started", "01a211a6-2d45-75df-8ac8-2035a4976232", "pi"),
        (
            "completed",
            False,
            "",
            "400 fake model: FAIL400 requested by the prompt",
            "01a211a6-2d45-75df-8ac8-2035a4976232",
        ),
    ]


async def test_thinking_from_real_stream(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("pi")
    cli.script_recorded("pi_thinking")
    events = await collect(runner(), "THINK\nsay hi", cwd=workdir)
    check_contract(events)
    assert summarize(events)[1:] == [
        ("action", "note", "completed", "pi.thinking.1", "Thinking about the request.", True),
        ("completed", True, "ok: THINK\nsay hi", None, "01a211a6-333b-76f1-8d0b-b12d2d27b4ff"),
    ]


async def test_aborted_error_tools_and_no_header(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("pi")
    cli.script(
        [
            {"type": "agent_start"},
            {"type": "auto_retry_start", "attempt": 1},
            {"type": "future_event", "x": 1},
            {
                "type": "tool_execution_start",
                "toolCallId": "t1",
                "toolName": "edit",
                "args": {"path": f"{workdir}/a.py"},
            },
            {
                "type": "tool_execution_end",
                "toolCallId": "t1",
                "toolName": "edit",
                "result": {"content": []},
                "isError": True,
            },
            {
                "type": "tool_execution_end",
                "toolCallId": "t2",
                "toolName": "read",
                "result": None,
                "isError": False,
            },
            assistant_end(
                {"type": "text", "text": "partial "},
                {"type": "text", "text": "answer"},
                stop="aborted",
            ),
            {"type": "agent_end", "messages": []},
        ]
    )
    events = await collect(runner(), "x", cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    path_token = summary[0][1]
    assert path_token.endswith(".jsonl")  # no header: the session path is the token
    assert summary == [
        ("started", path_token, "pi"),
        ("action", "file_change", "started", "t1", "a.py", None),
        ("action", "file_change", "completed", "t1", "a.py", False),
        ("action", "tool", "completed", "t2", "read", True),
        ("completed", False, "partial answer", "pi run aborted", path_token),
    ]


async def test_foreign_session_prompt_and_stream_end(fake_cli: Any, workdir: Path) -> None:
    """Resuming a session of another cwd: pi asks on stdout, reads closed stdin, exits 0."""
    cli: FakeCli = fake_cli("pi")
    cli.script(
        [
            header(SESSION_A),
            "Session found in different project: /elsewhere",
            "Fork this session into current directory? [y/N] Aborted.",
        ]
    )
    resume = ResumeToken("pi", SESSION_A)
    events = await collect(runner(), "x", resume, cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    assert summary[:3] == [
        ("started", SESSION_A, "pi"),
        ("action", "note", "completed", "pi.note.1", "invalid JSON from pi; ignoring line", False),
        ("action", "note", "completed", "pi.note.2", "invalid JSON from pi; ignoring line", False),
    ]
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert not done.ok
    assert done.error is not None
    assert done.error.startswith("pi finished without an agent_end event")
    assert "Session found in different project" in done.error


async def test_stream_end_and_nonzero_exit(fake_cli: Any, workdir: Path) -> None:
    cli: FakeCli = fake_cli("pi")
    cli.script([header(), assistant_end({"type": "text", "text": "so far"})])
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-1] == (
        "completed",
        False,
        "so far",
        "pi finished without an agent_end event",
        SESSION_A,
    )
    cli.script([header()], stderr=["Error: boom"], exit=1)
    events = await collect(runner(), "x", cwd=workdir)
    assert summarize(events)[-2:] == [
        ("action", "note", "completed", "pi.note.1", "pi failed (rc=1).", False),
        ("completed", False, "", "pi failed (rc=1).", SESSION_A),
    ]


def test_resume_codec_quoting() -> None:
    r = runner()
    plain = ResumeToken("pi", SESSION_A)
    spaced = ResumeToken("pi", "/home/me/.pi/agent/sessions/--a b--/x.jsonl")
    quoted = ResumeToken("pi", 'we"ird')
    assert r.format_resume(plain) == f"`pi --session {SESSION_A}`"
    assert r.format_resume(spaced) == f'`pi --session "{spaced.value}"`'
    for token in (plain, spaced, quoted):
        assert r.extract_resume(r.format_resume(token)) == token
    assert r.extract_resume("pi --session 'single quoted'") == ResumeToken("pi", "single quoted")
    assert r.extract_resume("pi --session /p/a.jsonl") == ResumeToken("pi", "/p/a.jsonl")
    text = f"pi --session first\nnoise\n`pi --session {SESSION_B}`\n"
    assert r.extract_resume(text) == ResumeToken("pi", SESSION_B)
    assert r.extract_resume("pie --session x") is None
    assert r.is_resume_line('pi --session "a b"')


def test_backend_checks_the_pi_cli() -> None:
    assert pi.BACKEND.cli_cmd == "pi"
