"""JsonlSubprocessRunner stream semantics against real child processes printing JSONL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.runner import JsonlSubprocessRunner
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

from .conftest import ScriptCliRunner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

PRELUDE = """
import json, os, sys
def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
"""

MakeRunner = Callable[..., ScriptCliRunner]


async def collect(
    runner: Any, prompt: str = "hi", resume: ResumeToken | None = None
) -> list[TakopiEvent]:
    return [event async for event in runner.run(prompt, resume)]


def notes(events: list[TakopiEvent]) -> list[str]:
    return [
        e.action.title for e in events if isinstance(e, ActionEvent) and e.action.kind == "note"
    ]


async def test_invalid_json_becomes_a_warning_note_and_blank_lines_are_skipped(
    script_runner: MakeRunner,
) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s1"})
print("", flush=True)
print("   ", flush=True)
print("this is {not json", flush=True)
emit({"type": "completed", "answer": "fine"})
"""
    )
    events = await collect(runner)
    assert [type(e).__name__ for e in events] == ["StartedEvent", "ActionEvent", "CompletedEvent"]
    note = events[1]
    assert isinstance(note, ActionEvent)
    assert note.action.title == "invalid JSON from scripted; ignoring line"
    assert note.level == "warning" and note.ok is False and note.phase == "completed"
    assert note.action.detail["line"] == "this is {not json"
    done = events[-1]
    assert isinstance(done, CompletedEvent) and done.ok and done.answer == "fine"


async def test_translate_exception_becomes_note_and_run_continues(
    script_runner: MakeRunner,
) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s1"})
emit({"type": "boom"})
emit({"type": "boom"})
emit({"type": "completed", "answer": "ok"})
"""
    )
    events = await collect(runner)
    assert notes(events) == ["scripted translation error; ignoring event"] * 2
    ids = [e.action.id for e in events if isinstance(e, ActionEvent)]
    assert len(set(ids)) == 2  # note ids are unique within the run
    assert isinstance(events[-1], CompletedEvent) and events[-1].ok


async def test_lines_after_the_first_completed_are_dropped(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s1"})
emit({"type": "completed", "answer": "first"})
emit({"type": "action", "id": "late"})
emit({"type": "completed", "answer": "second"})
"""
    )
    events = await collect(runner)
    assert len(events) == 2
    assert isinstance(events[-1], CompletedEvent) and events[-1].answer == "first"


async def test_duplicate_started_is_suppressed(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s1"})
emit({"type": "started", "session": "s1"})
emit({"type": "completed", "answer": ""})
"""
    )
    events = await collect(runner)
    assert sum(isinstance(e, StartedEvent) for e in events) == 1


async def test_started_must_match_requested_resume(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "someone-else"})
emit({"type": "completed", "answer": ""})
"""
    )
    with pytest.raises(RuntimeError, match="someone-else"):
        await collect(runner, resume=ResumeToken("scripted", "mine"))


async def test_second_session_in_one_run_raises(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "a"})
emit({"type": "started", "session": "b"})
emit({"type": "completed", "answer": ""})
"""
    )
    with pytest.raises(RuntimeError):
        await collect(runner)


async def test_nonzero_exit_without_completed(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s9"})
emit({"type": "action", "id": "a1", "kind": "command", "title": "ls"})
sys.stderr.write("SECRET-STDERR-DETAIL something broke\\n")
sys.exit(3)
"""
    )
    events = await collect(runner)
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.ok is False
    assert done.error == "scripted failed (rc=3)."
    assert done.resume == ResumeToken("scripted", "s9")
    assert "scripted failed (rc=3)." in notes(events)
    rendered = repr(events)
    assert "SECRET-STDERR-DETAIL" not in rendered


async def test_clean_exit_without_completed_uses_stream_end_hook(
    script_runner: MakeRunner,
) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s2"})
"""
    )
    events = await collect(runner)
    done = events[-1]
    assert isinstance(done, CompletedEvent) and done.ok is False
    assert done.error == "scripted finished without a completed event"
    assert done.resume == ResumeToken("scripted", "s2")

    class Lenient(ScriptCliRunner):
        def stream_end_events(
            self, *, resume: Any, found_session: Any, state: Any
        ) -> list[TakopiEvent]:
            return [
                CompletedEvent(engine=self.engine, ok=True, answer="done", resume=found_session)
            ]

    lenient = Lenient(script=runner.script)
    events = await collect(lenient)
    assert isinstance(events[-1], CompletedEvent) and events[-1].ok and events[-1].answer == "done"


async def test_stderr_is_drained_and_never_reaches_the_answer(script_runner: MakeRunner) -> None:
    # 1 MiB on stderr would deadlock a runner that does not drain it concurrently.
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s3"})
for i in range(16384):
    sys.stderr.write("STDERR-NOISE-%05d " % i + "x" * 48 + "\\n")
sys.stderr.flush()
emit({"type": "completed", "ok": False, "answer": "partial", "error": "engine error"})
"""
    )
    events = await collect(runner)
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.answer == "partial" and done.error == "engine error"
    assert "STDERR-NOISE" not in repr(events)


async def test_very_long_lines_are_not_truncated(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s4"})
emit({"type": "completed", "answer": "y" * (3 * 1024 * 1024)})
"""
    )
    events = await collect(runner)
    done = events[-1]
    assert isinstance(done, CompletedEvent) and len(done.answer) == 3 * 1024 * 1024


async def test_final_line_without_newline_is_read(script_runner: MakeRunner) -> None:
    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s5"})
sys.stdout.write(json.dumps({"type": "completed", "answer": "tail"}))
"""
    )
    events = await collect(runner)
    assert isinstance(events[-1], CompletedEvent) and events[-1].answer == "tail"


async def test_prompt_goes_to_stdin_and_env_and_cwd_apply(
    script_runner: MakeRunner, tmp_path: Path
) -> None:
    runner = script_runner(
        PRELUDE
        + """
prompt = sys.stdin.read()
emit({"type": "started", "session": "s6"})
emit({"type": "completed", "answer": "|".join([prompt, os.environ.get("SCRIPTED_X", ""), os.getcwd()])})
""",
        extra_env={"SCRIPTED_X": "from-env"},
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    token = set_run_base_dir(workdir)
    try:
        events = await collect(runner, prompt="héllo prompt")
    finally:
        reset_run_base_dir(token)
    done = events[-1]
    assert isinstance(done, CompletedEvent)
    assert done.answer == f"héllo prompt|from-env|{workdir.resolve()}"


async def test_missing_cli_is_a_clean_error(script_runner: MakeRunner) -> None:
    runner = script_runner("", executable="takopi-no-such-cli-xyz")
    events = await collect(runner)
    assert len(events) == 1
    done = events[0]
    assert isinstance(done, CompletedEvent) and done.ok is False
    assert done.error == "takopi-no-such-cli-xyz not found on PATH"

    class Hinted(ScriptCliRunner):
        install_cmd = "npm install -g scripted-cli"

    hinted = Hinted(script=runner.script, executable="takopi-no-such-cli-xyz")
    events = await collect(hinted)
    assert events[0] == CompletedEvent(
        engine="scripted",
        ok=False,
        answer="",
        error="takopi-no-such-cli-xyz not found on PATH; install with: npm install -g scripted-cli",
    )


async def test_missing_cwd_is_a_clean_error(script_runner: MakeRunner, tmp_path: Path) -> None:
    runner = script_runner(PRELUDE)
    token = set_run_base_dir(tmp_path / "gone")
    try:
        events = await collect(runner)
    finally:
        reset_run_base_dir(token)
    done = events[-1]
    assert isinstance(done, CompletedEvent) and not done.ok
    assert done.error is not None and "working directory not found" in done.error


async def test_non_executable_file_is_a_clean_error(
    script_runner: MakeRunner, tmp_path: Path
) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    runner = script_runner("", executable=str(plain))
    events = await collect(runner)
    done = events[-1]
    assert isinstance(done, CompletedEvent) and not done.ok
    assert done.error is not None and "not executable" in done.error


async def test_custom_decoder_and_decode_error_hook(script_runner: MakeRunner) -> None:
    class Strict(ScriptCliRunner):
        def decode_jsonl(self, *, line: bytes) -> Any:
            data = super().decode_jsonl(line=line)
            if "type" not in data:
                raise KeyError("type")  # a schema error, not a JSON error
            return data

    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s7"})
emit({"no_type": 1})
emit({"type": "completed", "answer": "x"})
"""
    )
    strict = Strict(script=runner.script)
    events = await collect(strict)
    # Schema errors are logged and dropped by default (no note for the user).
    assert [type(e) for e in events] == [StartedEvent, CompletedEvent]


async def test_hook_keyword_names_are_the_plugin_api() -> None:
    import inspect

    expected = {
        "build_args": ["self", "prompt", "resume", "state"],
        "stdin_payload": ["self", "prompt", "resume", "state"],
        "env": ["self", "state"],
        "new_state": ["self", "prompt", "resume"],
        "start_run": ["self", "prompt", "resume", "state"],
        "translate": ["self", "data", "state", "resume", "found_session"],
        "decode_jsonl": ["self", "line"],
        "decode_error_events": ["self", "raw", "line", "error", "state"],
        "invalid_json_events": ["self", "raw", "line", "state"],
        "translate_error_events": ["self", "data", "error", "state"],
        "process_error_events": ["self", "rc", "resume", "found_session", "state"],
        "stream_end_events": ["self", "resume", "found_session", "state"],
    }
    for name, params in expected.items():
        sig = inspect.signature(getattr(JsonlSubprocessRunner, name))
        assert list(sig.parameters) == params, name
        kw_only = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
        if name in {
            "env",
            "decode_jsonl",
            "decode_error_events",
            "invalid_json_events",
            "translate_error_events",
            "stream_end_events",
        }:
            assert kw_only == params[1:], name


async def test_decoder_returning_none_counts_as_invalid_json_but_schema_errors_do_not(
    script_runner: MakeRunner,
) -> None:
    class Picky(ScriptCliRunner):
        def decode_jsonl(self, *, line: bytes) -> Any:
            data = super().decode_jsonl(line=line)
            if data.get("type") == "skip":
                return None
            if data.get("type") == "invalid-schema":
                raise ValueError("field x: wrong type")  # like a pydantic ValidationError
            return data

    runner = script_runner(
        PRELUDE
        + """
emit({"type": "started", "session": "s8"})
emit({"type": "skip"})
emit({"type": "invalid-schema"})
emit({"type": "completed", "answer": "x"})
"""
    )
    events = await collect(Picky(script=runner.script))
    assert notes(events) == ["invalid JSON from scripted; ignoring line"]
    assert isinstance(events[-1], CompletedEvent) and events[-1].ok
