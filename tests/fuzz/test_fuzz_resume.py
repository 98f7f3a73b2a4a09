"""Property-based fuzzing of the engines' resume-line codecs: ``format_resume`` then
``extract_resume`` gives the token back, for every token the engine can produce, in a final
message as written and as Telegram sends it back (rendered, without the backticks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from takopi.model import ResumeToken
from takopi.runners.claude import build_runner as build_claude
from takopi.runners.codex import build_runner as build_codex
from takopi.runners.demo import build_runner as build_demo
from takopi.runners.opencode import build_runner as build_opencode
from takopi.runners.pi import build_runner as build_pi
from takopi.telegram.render import render_markdown
from takopi.transport_runtime import strip_resume_lines
from tests.fuzz.strategies import odd_text

CONFIG = Path("/tmp/takopi.toml")
RUNNERS: dict[str, Any] = {
    "codex": build_codex({}, CONFIG),
    "claude": build_claude({}, CONFIG),
    "opencode": build_opencode({}, CONFIG),
    "pi": build_pi({}, CONFIG),
    "demo": build_demo({}, CONFIG),
}

# one whitespace- and backtick-free token (what the regexes of codex and claude accept;
# real ones are UUIDs)
_word = st.text(
    st.characters(blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"], blacklist_characters="`"),
    min_size=1,
    max_size=40,
).filter(lambda t: not any(c.isspace() for c in t))
TOKENS = {
    "codex": st.one_of(st.uuids().map(str), _word),
    "claude": st.one_of(st.uuids().map(str), _word),
    "demo": st.one_of(st.uuids().map(str), _word),
    "opencode": st.from_regex(r"ses_[A-Za-z0-9]{1,30}", fullmatch=True),
    # pi's token is a session file path: spaces and quotes included, no line break
    "pi": st.one_of(
        st.builds(lambda d, f: f"/home/u/.pi/sessions/{d}/{f}.jsonl", _word, _word),
        st.text(
            st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), min_size=1, max_size=40
        ).filter(lambda t: t.strip()),
    ),
}


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@given(data=st.data())
def test_resume_line_round_trip(engine: str, data: st.DataObject) -> None:
    runner = RUNNERS[engine]
    value = data.draw(TOKENS[engine], label="token")
    token = ResumeToken(engine=engine, value=value)
    line = runner.format_resume(token)
    assert runner.is_resume_line(line)
    assert runner.extract_resume(line) == token
    # in a final message, after an answer that may mention other sessions
    answer = data.draw(odd_text(max_size=80), label="answer")
    final = f"done · {engine} · 3s\n\n{answer}\n\n`ctx: api`  \n{line}"
    assert runner.extract_resume(final) == token
    # the prompt sent with it loses the resume line and nothing else
    prompt = strip_resume_lines(f"{line}\nplease go on", is_resume_line=runner.is_resume_line)
    assert prompt == "please go on"


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@given(data=st.data())
def test_rendered_resume_line_round_trip(engine: str, data: st.DataObject) -> None:
    """What a reply carries is the rendered text: inline code without its backticks."""
    runner = RUNNERS[engine]
    value = data.draw(TOKENS[engine].filter(lambda v: "`" not in v), label="token")
    token = ResumeToken(engine=engine, value=value)
    text, _entities = render_markdown(runner.format_resume(token))
    assert runner.extract_resume(text) == token


_FRAGMENTS = st.sampled_from(
    [
        "codex resume ",
        "claude --resume ",
        "claude -r ",
        "opencode --session ses_",
        "opencode run -s ses_",
        "pi --session ",
        "`",
        '"',
        "'",
        " ",
        "abc123",
        "\n",
        "\r",
        "\r\n",
        "\u2028",
        "\x1c",
        "\x85",
        "\x0b",
        "\t",
    ]
)
resume_like = st.one_of(
    odd_text(max_size=200), st.lists(st.one_of(_FRAGMENTS, odd_text(max_size=5))).map("".join)
)


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@given(text=resume_like)
# found by this test: a match spanning two lines ("codex resume" + a one-word line resumed
# session "thanks"), and lines split by "\r" that prompt stripping saw but extraction did not
@example(text="codex resume\nthanks")
@example(text="claude --resume 0\rcodex resume ")
@example(text="codex resume \ropencode --session ses_abc123")
@example(text="codex resume \rpi --session codex resume ")
def test_extraction_never_raises_and_agrees_with_line_detection(engine: str, text: str) -> None:
    runner = RUNNERS[engine]
    found = runner.extract_resume(text)
    assert found is None or (found.engine == engine and found.value)
    # the lines stripped from a prompt as resume lines are the ones the token comes from:
    # the last of them wins
    tokens = [runner.extract_resume(line) for line in text.splitlines()]
    stripped = [line for line in text.splitlines() if runner.is_resume_line(line)]
    assert all(
        tokens[i] is not None for i, line in enumerate(text.splitlines()) if line in stripped
    )
    expected = [runner.extract_resume(line) for line in stripped]
    assert found == (expected[-1] if expected else None)
