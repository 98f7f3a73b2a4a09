"""What every bundled engine does the same way: a missing CLI, the resume line round trip,
invalid ``[<engine>]`` tables and the backend declaration (one parametrized test each;
engine-specific behaviour stays in ``test_<engine>_runner.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.config import ConfigError
from takopi.model import ResumeToken
from takopi.runners import claude, codex, opencode, pi
from tests.runners.conftest import collect, summarize

pytestmark = pytest.mark.usefixtures("isolated_home")

CONFIG_PATH = Path("/cfg/takopi.toml")
MODULES: dict[str, Any] = {"claude": claude, "codex": codex, "opencode": opencode, "pi": pi}
INSTALL = {
    "claude": "npm install -g @anthropic-ai/claude-code",
    "codex": "npm install -g @openai/codex",
    "opencode": "npm install -g opencode-ai@latest",
    "pi": "npm install -g @mariozechner/pi-coding-agent",
}
# (engine, a token, its resume line, another engine's token)
RESUME_LINES = [
    (
        "claude",
        "62423461-cbc4-4820-a95c-f9b74cdff29e",
        "`claude --resume 62423461-cbc4-4820-a95c-f9b74cdff29e`",
        "codex",
    ),
    (
        "codex",
        "0199a213-81c0-7800-8aa1-bbab2a035a53",
        "`codex resume 0199a213-81c0-7800-8aa1-bbab2a035a53`",
        "claude",
    ),
    (
        "opencode",
        "ses_dee59f237ffelFCU70Hll1rxwR",
        "`opencode --session ses_dee59f237ffelFCU70Hll1rxwR`",
        "pi",
    ),
    (
        "pi",
        "01a211a6-10a8-7786-9fb8-afcca4ba4bdc",
        "`pi --session 01a211a6-10a8-7786-9fb8-afcca4ba4bdc`",
        "codex",
    ),
]
# (engine, config, a fragment the ConfigError must contain)
INVALID_CONFIGS = [
    ("claude", {"model": 5}, "`claude.model`"),
    ("claude", {"model": ""}, "`claude.model`"),
    ("claude", {"allowed_tools": "Bash"}, "`claude.allowed_tools`"),
    ("claude", {"allowed_tools": ["Bash", 1]}, "`claude.allowed_tools`"),
    (
        "claude",
        {"dangerously_skip_permissions": "yes"},
        "`claude.dangerously_skip_permissions`",
    ),
    ("claude", {"use_api_billing": 1}, "`claude.use_api_billing`"),
    ("claude", {"permission_mode": "accept edits"}, "`claude.permission_mode`"),
    ("claude", {"permission_mode": 3}, "`claude.permission_mode`"),
    ("codex", {"extra_args": "-c x=1"}, "expected a list of strings"),
    ("codex", {"extra_args": ["-c", 3]}, "expected a list of strings"),
    ("codex", {"extra_args": ["--json"]}, "exec-only flag '--json' is managed by Takopi"),
    ("codex", {"extra_args": ["-o", "x"]}, "exec-only flag '-o' is managed by Takopi"),
    ("codex", {"extra_args": ["--color=always"]}, "exec-only flag '--color=always'"),
    (
        "codex",
        {"extra_args": ["--output-schema=s.json"]},
        "exec-only flag '--output-schema=s.json'",
    ),
    ("codex", {"profile": 3}, "`codex.profile`"),
    ("codex", {"profile": "  "}, "`codex.profile`"),
    ("opencode", {"model": 3}, "`opencode.model`"),
    ("opencode", {"model": ""}, "`opencode.model`"),
    ("opencode", {"model": "   "}, "`opencode.model`"),
    ("opencode", {"model": ["a"]}, "`opencode.model`"),
    ("pi", {"extra_args": "--x"}, "`pi.extra_args`"),
    ("pi", {"extra_args": [1]}, "`pi.extra_args`"),
    ("pi", {"model": 1}, "`pi.model`"),
    ("pi", {"provider": ""}, "`pi.provider`"),
]


def build(engine: str, **config: Any) -> Any:
    return MODULES[engine].build_runner(config, CONFIG_PATH)


@pytest.mark.anyio
@pytest.mark.parametrize("engine", sorted(INSTALL))
async def test_missing_cli_is_a_clean_error(engine: str, empty_path: Path, workdir: Path) -> None:
    events = await collect(build(engine), "x", cwd=workdir)
    error = f"{engine} not found on PATH; install with: {INSTALL[engine]}"
    assert summarize(events) == [("completed", False, "", error, None)]


@pytest.mark.parametrize(("engine", "value", "line", "other"), RESUME_LINES)
def test_resume_line_round_trip(engine: str, value: str, line: str, other: str) -> None:
    r = build(engine)
    token = ResumeToken(engine, value)
    assert r.format_resume(token) == line
    assert r.extract_resume(line) == token
    assert r.is_resume_line(line)
    with pytest.raises(RuntimeError):
        r.format_resume(ResumeToken(other, "x"))


@pytest.mark.parametrize(("engine", "config", "fragment"), INVALID_CONFIGS)
def test_invalid_config(engine: str, config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=engine) as info:
        build(engine, **config)
    assert fragment in str(info.value)
    assert str(CONFIG_PATH) in str(info.value)


@pytest.mark.parametrize("engine", sorted(INSTALL))
def test_backend_declaration(engine: str) -> None:
    backend = MODULES[engine].BACKEND
    assert backend.id == engine
    assert backend.install_cmd == INSTALL[engine]
