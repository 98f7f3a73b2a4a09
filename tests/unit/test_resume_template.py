"""Resume lines written without the engine's worker: the template its load-check ships."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from takopi.model import ResumeToken
from takopi.protocol import EngineLoaded
from takopi.runner import ResumeTokenMixin
from takopi.supervisor.ports import ResumeLines
from takopi.worker.engine import _resume_codec, load_engine

TOKENS = {
    "codex": ("019a2f3e-7c1d-7b22-9f00-5e4d3c2b1a09", "thread_ABC-12"),
    "claude": ("5e4d3c2b-1a09-4f00-9b22-019a2f3e7c1d", "abc123"),
    "opencode": ("ses_9aB3xY", "ses_4ffe21c0a8bZZ"),
    "pi": ("0f1e2d3c", "session-7"),
}


@pytest.mark.parametrize("engine", sorted(TOKENS))
def test_template_line_is_the_runners_own_line(engine: str, tmp_path: Path) -> None:
    runner, loaded = load_engine(engine, {}, tmp_path / "takopi.toml")
    assert isinstance(loaded, EngineLoaded) and loaded.resume is not None
    lines = ResumeLines()
    lines.set_template(
        engine, loaded.resume, re.compile(loaded.resume.pattern or "", loaded.resume.flags)
    )
    for value in TOKENS[engine]:
        token = ResumeToken(engine=engine, value=value)
        assert lines.from_template(token) == runner.format_resume(token)


def test_a_token_the_line_cannot_carry_gives_no_line(tmp_path: Path) -> None:
    _runner, loaded = load_engine("codex", {}, tmp_path / "takopi.toml")
    assert isinstance(loaded, EngineLoaded) and loaded.resume is not None
    lines = ResumeLines()
    lines.set_template(
        "codex", loaded.resume, re.compile(loaded.resume.pattern or "", loaded.resume.flags)
    )
    assert lines.from_template(ResumeToken("codex", "two words")) is None
    assert lines.from_template(ResumeToken("claude", "abc")) is None  # no template for it


class _Decorated(ResumeTokenMixin):
    """A plugin whose line does not hold the token as it is."""

    engine = "deco"
    resume_re = re.compile(r"(?im)^deco resume (?P<token>\S+)$")

    def format_resume(self, token: ResumeToken) -> str:
        return f"deco resume {token.value.upper()}"


class _Failing(ResumeTokenMixin):
    engine = "failing"
    resume_re = re.compile(r"(?im)^failing resume (?P<token>\S+)$")

    def format_resume(self, token: ResumeToken) -> str:
        raise RuntimeError("needs its worker")


@pytest.mark.parametrize("runner", [_Decorated(), _Failing()])
def test_no_template_when_the_line_is_not_prefix_token_suffix(runner: ResumeTokenMixin) -> None:
    info = _resume_codec(runner)
    assert info is not None and info.pattern
    assert info.line_prefix is None
    lines = ResumeLines()
    lines.set_template(runner.engine, info, re.compile(info.pattern, info.flags))
    assert lines.from_template(ResumeToken(runner.engine, "abc")) is None
