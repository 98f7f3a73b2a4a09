"""Property-based fuzzing of message directives and ``ctx:`` footer lines
(:mod:`takopi.directives`), alone and through a real :class:`TransportRuntime`."""

from __future__ import annotations

from pathlib import Path

from hypothesis import assume, example, given
from hypothesis import strategies as st

from takopi.context import RunContext
from takopi.directives import (
    DirectiveError,
    format_context_line,
    parse_context_line,
    parse_directives,
)
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.claude import build_runner as build_claude
from takopi.runners.codex import build_runner as build_codex
from takopi.telegram.render import render_markdown
from takopi.transport_runtime import TransportRuntime
from tests.fuzz.strategies import LINE_BREAKS, odd_text

ENGINES = ["codex", "claude"]

# what a config accepts as a project alias: any key that is not blank once stripped
# (line breaks and control characters left out: a one-line footer cannot carry them)
aliases = st.text(
    st.characters(blacklist_characters=LINE_BREAKS, blacklist_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=12,
).filter(lambda a: a.strip() and a.strip().lower() not in ENGINES)
# what ``@branch`` can name: one whitespace-free token
branches = st.text(
    st.characters(blacklist_categories=["Zs", "Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=20
).filter(lambda b: not any(c.isspace() for c in b))


def _projects(names: list[str]) -> ProjectsConfig:
    return ProjectsConfig(
        projects={
            name.strip().lower(): ProjectConfig(alias=name.strip(), path=Path("/tmp") / "p")
            for name in names
        }
    )


projects_configs = st.lists(aliases, min_size=1, max_size=4, unique_by=lambda a: a.strip().lower())

# messages whose first line is made of directive-like tokens
_tokens = st.one_of(
    st.sampled_from(["/codex", "/Claude@takopi_bot", "/unknown", "@", "@main", "/", "//x"]),
    st.builds(lambda b: f"@{b}", branches),
    st.builds(lambda a: f"/{a}", aliases),
    odd_text(max_size=8),
)
directive_texts = st.one_of(
    odd_text(max_size=60),
    st.builds(
        lambda tokens, rest: " ".join(tokens) + rest,
        st.lists(_tokens, max_size=5),
        odd_text(max_size=30),
    ),
)


@given(directive_texts, projects_configs)
def test_directives_never_raise_anything_but_directive_error(text: str, names: list[str]) -> None:
    projects = _projects(names)
    try:
        parsed = parse_directives(text, engine_ids=ENGINES, projects=projects)
    except DirectiveError as exc:
        assert str(exc)
        return
    assert parsed.engine is None or parsed.engine in ENGINES
    assert parsed.project is None or parsed.project in projects.projects
    assert parsed.branch is None or (parsed.branch and not any(c.isspace() for c in parsed.branch))
    if parsed.engine is None and parsed.project is None and parsed.branch is None:
        assert parsed.prompt == text.strip()
    else:
        # directives are taken off the prompt, nothing else is
        assert len(parsed.prompt) <= len(text)


@given(odd_text(max_size=200), st.one_of(st.none(), projects_configs))
def test_ctx_parsing_never_raises_anything_but_directive_error(
    text: str, names: list[str] | None
) -> None:
    projects = _projects(names) if names is not None else None
    try:
        found = parse_context_line(text, projects=projects)
    except DirectiveError as exc:
        assert "unknown project" in str(exc)
        return
    if found is not None:
        assert projects is not None and projects.resolve(found.project) is not None


@given(projects_configs, st.integers(0, 3), st.one_of(st.none(), branches))
@example(["my app"], 0, None)  # an alias with a space: found by this test
def test_ctx_line_round_trip(names: list[str], index: int, branch: str | None) -> None:
    """The footer a run writes reads back as the same context — as written, and as the
    plain text Telegram sends back when a user replies to the rendered message."""
    projects = _projects(names)
    name = names[index % len(names)]
    context = RunContext(project=name.strip().lower(), branch=branch)
    line = format_context_line(context, projects=projects)
    assert line is not None
    assert parse_context_line(line, projects=projects) == context
    body = f"some answer\n\nctx: other\n{line}"
    assert parse_context_line(body, projects=_projects([*names, "other"])) == context
    rendered, _entities = render_markdown(line)
    assume("`" not in name + (branch or ""))  # a backtick inside would end the code span
    assert parse_context_line(rendered, projects=projects) == context


def _runtime() -> TransportRuntime:
    router = AutoRouter(
        [
            RunnerEntry(engine="codex", runner=build_codex({}, Path("/tmp/x.toml"))),
            RunnerEntry(engine="claude", runner=build_claude({}, Path("/tmp/x.toml"))),
        ],
        default_engine="codex",
    )
    return TransportRuntime(
        router=router, projects=_projects(["api", "web app"]), config_path=Path("/tmp/x.toml")
    )


RUNTIME = _runtime()
reply_texts = st.one_of(
    st.none(),
    odd_text(max_size=80),
    st.builds(
        lambda body, ctx, resume: f"done · codex · 1s\n\n{body}\n\n{ctx}\n{resume}",
        odd_text(max_size=40),
        st.sampled_from(["ctx: api", "ctx: web app @feat", "ctx: gone", "", "ctx:"]),
        st.sampled_from(["codex resume abc", "claude --resume x", "", "codex resume"]),
    ),
)


@given(directive_texts, reply_texts, st.one_of(st.none(), st.integers()))
def test_resolve_message_raises_only_directive_errors(
    text: str, reply_text: str | None, chat_id: int | None
) -> None:
    try:
        resolved = RUNTIME.resolve_message(text=text, reply_text=reply_text, chat_id=chat_id)
    except DirectiveError as exc:
        assert str(exc)
        return
    assert isinstance(resolved.prompt, str) and resolved.prompt
    assert resolved.resume_token is None or resolved.resume_token.engine in ENGINES
    if resolved.context is not None:
        assert resolved.context.project in (None, "api", "web app")
