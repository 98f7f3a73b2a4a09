"""Every runner against streams recorded from the real CLIs (``tests/fixtures/streams``).

The fixtures were captured by driving codex 0.169.0, claude 2.1.197, opencode 1.18.33 and
pi 0.73.1 against the fake model server; replaying them through a scripted CLI pins the exact
takopi event sequence each real stream produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from takopi.model import ResumeToken
from takopi.runners import claude, codex, opencode, pi
from tests.runners.conftest import FIXTURES, FakeCli, check_contract, collect, summarize

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ANY = "<any id>"  # ids assigned by the CLI; compared as wildcards


def matches(actual: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    """Tuple equality where ``ANY`` in ``expected`` matches anything."""
    return len(actual) == len(expected) and all(
        e == ANY or a == e for a, e in zip(actual, expected, strict=True)
    )


BUILDERS: dict[str, Any] = {
    "codex": codex.build_runner,
    "claude": claude.build_runner,
    "opencode": opencode.build_runner,
    "pi": pi.build_runner,
}


def session_of(name: str) -> str:
    """The session/thread id printed in a recorded stream."""
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        data = json.loads(line)
        for key in ("thread_id", "session_id", "sessionID"):
            if isinstance(data.get(key), str):
                return str(data[key])
        if data.get("type") == "session":
            return str(data["id"])
    raise AssertionError(f"no session id in {name}")


CASES: list[tuple[str, str, bool, list[tuple[Any, ...]]]] = [
    (
        "codex",
        "codex_new",
        False,
        [
            ("action", "turn", "started", "turn_0", "turn started", None),
            ("completed", True, "ok: hello there", None),
        ],
    ),
    (
        "codex",
        "codex_tool",
        False,
        [
            ("action", "turn", "started", "turn_0", "turn started", None),
            ("action", "command", "started", "item_1", "/bin/bash -lc 'echo hi'", None),
            ("action", "command", "completed", "item_1", "/bin/bash -lc 'echo hi'", True),
            ("completed", True, "`echo hi` printed: hi", None),
        ],
    ),
    (
        "codex",
        "codex_resume",
        True,
        [
            ("action", "turn", "started", "turn_0", "turn started", None),
            ("completed", True, "HISTORY: 1 earlier prompt(s)\n- hello there", None),
        ],
    ),
    (
        "codex",
        "codex_error",
        False,
        [
            ("action", "turn", "started", "turn_0", "turn started", None),
            (
                "action",
                "note",
                "completed",
                "codex.note.1",
                "fake model: FAIL400 requested by the prompt",
                False,
            ),
            ("completed", False, "", "fake model: FAIL400 requested by the prompt"),
        ],
    ),
    (
        "codex",
        "codex_thinking",
        False,
        [
            ("action", "turn", "started", "turn_0", "turn started", None),
            ("action", "note", "completed", "item_0", "Thinking about the request.", True),
            ("completed", True, "ok: THINK\nsay hi", None),
        ],
    ),
    ("claude", "claude_new", False, [("completed", True, "ok: hello there", None)]),
    (
        "claude",
        "claude_resume",
        True,
        [("completed", True, "HISTORY: 1 earlier prompt(s)\n- hello there", None)],
    ),
    (
        "claude",
        "claude_tool",
        False,
        [
            ("action", "command", "started", ANY, "echo hi", None),
            ("action", "command", "completed", ANY, "echo hi", True),
            ("completed", True, "`echo hi` printed: hi", None),
        ],
    ),
    (
        "claude",
        "claude_thinking",
        False,
        [
            (
                "action",
                "note",
                "completed",
                "claude.thinking.1",
                "Thinking about the request.",
                True,
            ),
            ("completed", True, "ok: THINK\nsay hi", None),
        ],
    ),
    (
        "claude",
        "claude_error",
        False,
        [("completed", False, "", "API Error: 400 fake model: FAIL400 requested by the prompt")],
    ),
    (
        "claude",
        "claude_denied",
        False,
        [
            ("action", "command", "started", ANY, "touch denied.txt", None),
            ("action", "command", "completed", ANY, "touch denied.txt", False),
            (
                "action",
                "warning",
                "completed",
                ANY,
                "permission denied: Bash `touch denied.txt`",
                False,
            ),
            (
                "completed",
                True,
                "`touch denied.txt` printed: touch in '/tmp/takopi-rec/work/denied.txt' was "
                "blocked. For security, Claude Code may only create or modify files in the "
                "allowed working directories for this session: '/tmp/takopi-rec/work'."
                "\n\npermission denied: Bash `touch denied.txt`",
                None,
            ),
        ],
    ),
    ("opencode", "opencode_new", False, [("completed", True, "ok: hello there", None)]),
    (
        "opencode",
        "opencode_resume",
        True,
        [("completed", True, "HISTORY: 1 earlier prompt(s)\n- hello there", None)],
    ),
    (
        "opencode",
        "opencode_tool",
        False,
        [
            ("action", "command", "started", ANY, "echo hi", None),
            ("action", "command", "completed", ANY, "echo hi", True),
            ("completed", True, "`echo hi` printed: hi", None),
        ],
    ),
    (
        "opencode",
        "opencode_error",
        False,
        [("completed", False, "", "fake model: FAIL400 requested by the prompt")],
    ),
    (
        "opencode",
        "opencode_thinking",
        False,
        [
            (
                "action",
                "note",
                "completed",
                ANY,
                "Thinking about the request.",
                True,
            ),
            ("completed", True, "ok: THINK\nsay hi", None),
        ],
    ),
    ("pi", "pi_new", False, [("completed", True, "ok: hello there", None)]),
    (
        "pi",
        "pi_resume",
        True,
        [("completed", True, "HISTORY: 1 earlier prompt(s)\n- hello there", None)],
    ),
    (
        "pi",
        "pi_tool",
        False,
        [
            ("action", "command", "started", ANY, "echo hi", None),
            ("action", "command", "completed", ANY, "echo hi", True),
            ("completed", True, "`echo hi` printed: hi", None),
        ],
    ),
    (
        "pi",
        "pi_error",
        False,
        [("completed", False, "", "400 fake model: FAIL400 requested by the prompt")],
    ),
]


@pytest.mark.parametrize(
    ("engine", "name", "is_resume", "expected"), CASES, ids=[case[1] for case in CASES]
)
async def test_recorded_stream(
    fake_cli: Any,
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    name: str,
    is_resume: bool,
    expected: list[tuple[Any, ...]],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PI_CODING_AGENT_DIR", raising=False)
    cli: FakeCli = fake_cli(engine)
    cli.script_recorded(name)
    session = session_of(name)
    resume = ResumeToken(engine, session) if is_resume else None
    runner = BUILDERS[engine]({}, Path("/cfg/takopi.toml"))
    events = await collect(runner, "prompt", resume, cwd=workdir)
    check_contract(events)
    summary = summarize(events)
    assert summary[0][0] == "started"
    assert summary[0][1] == session
    middle = summary[1:-1]
    assert len(middle) == len(expected) - 1, middle
    for got, want in zip(middle, expected[:-1], strict=True):
        assert matches(got, want), (got, want)
    # the phases of one action share its id; different actions have different ids
    ids: dict[tuple[Any, Any], set[Any]] = {}
    for item in middle:
        ids.setdefault((item[1], item[4]), set()).add(item[3])
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len({next(iter(v)) for v in ids.values()}) == len(ids)
    assert summary[-1] == (*expected[-1], session)
