"""Directive parsing, the ``ctx:`` footer and its parsing from replies (behavior.md §1.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from takopi.context import RunContext
from takopi.directives import (
    DirectiveError,
    format_context_line,
    parse_context_line,
    parse_directives,
)
from takopi.projects import ProjectConfig, ProjectsConfig

ENGINES = ("claude", "codex", "opencode", "pi")


@pytest.fixture
def projects() -> ProjectsConfig:
    return ProjectsConfig(
        projects={
            "happy-gadgets": ProjectConfig(alias="Happy-Gadgets", path=Path("/srv/happy")),
            "api": ProjectConfig(alias="api", path=Path("/srv/api")),
        }
    )


def test_engine_project_and_branch_are_consumed(projects: ProjectsConfig) -> None:
    parsed = parse_directives("/happy-gadgets @feat/x do y", engine_ids=ENGINES, projects=projects)
    assert parsed.prompt == "do y"
    assert parsed.project == "happy-gadgets"
    assert parsed.branch == "feat/x"
    assert parsed.engine is None


def test_directives_are_case_insensitive_and_strip_bot_suffix(projects: ProjectsConfig) -> None:
    parsed = parse_directives(
        "/CLAUDE@takopi_bot /Api fix it", engine_ids=ENGINES, projects=projects
    )
    assert parsed.engine == "claude"
    assert parsed.project == "api"
    assert parsed.prompt == "fix it"


def test_parsing_stops_at_the_first_other_token(projects: ProjectsConfig) -> None:
    parsed = parse_directives("/codex explain /api @main", engine_ids=ENGINES, projects=projects)
    assert parsed.engine == "codex"
    assert parsed.project is None
    assert parsed.branch is None
    assert parsed.prompt == "explain /api @main"


def test_unknown_slash_command_is_left_in_the_prompt(projects: ProjectsConfig) -> None:
    parsed = parse_directives("/unknown do it", engine_ids=ENGINES, projects=projects)
    assert parsed == parse_directives("/unknown do it", engine_ids=(), projects=None)
    assert parsed.prompt == "/unknown do it"
    assert parsed.engine is None


def test_only_the_first_non_empty_line_is_parsed(projects: ProjectsConfig) -> None:
    text = "\n\n  /pi @dev  \nsecond line\n/codex not a directive"
    parsed = parse_directives(text, engine_ids=ENGINES, projects=projects)
    assert parsed.engine == "pi"
    assert parsed.branch == "dev"
    assert parsed.prompt == "second line\n/codex not a directive"


def test_remaining_tokens_of_the_directive_line_are_kept(projects: ProjectsConfig) -> None:
    parsed = parse_directives("/codex   fix   bug\nmore", engine_ids=ENGINES, projects=projects)
    assert parsed.prompt == "fix bug\nmore"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/codex /claude hi", "multiple engine directives"),
        ("/api /happy-gadgets hi", "multiple project directives"),
        ("@a @b hi", "multiple @branch directives"),
    ],
)
def test_duplicate_directives_are_errors(projects: ProjectsConfig, text: str, message: str) -> None:
    with pytest.raises(DirectiveError) as info:
        parse_directives(text, engine_ids=ENGINES, projects=projects)
    assert str(info.value) == message


def test_bare_at_sign_stops_parsing(projects: ProjectsConfig) -> None:
    parsed = parse_directives("/codex @ hi", engine_ids=ENGINES, projects=projects)
    assert parsed.engine == "codex"
    assert parsed.branch is None
    assert parsed.prompt == "@ hi"


def test_empty_text() -> None:
    assert parse_directives("", engine_ids=ENGINES, projects=None).prompt == ""
    assert parse_directives("   \n ", engine_ids=ENGINES, projects=None).prompt == ""


def test_projects_may_be_a_list_of_aliases() -> None:
    parsed = parse_directives("/Web hi", engine_ids=ENGINES, projects=["web"])
    assert parsed.project == "web"


def test_format_context_line_uses_configured_alias(projects: ProjectsConfig) -> None:
    ctx = RunContext(project="happy-gadgets", branch="feat/x")
    assert format_context_line(ctx, projects=projects) == "`ctx: Happy-Gadgets @feat/x`"
    assert format_context_line(RunContext(project="api"), projects=projects) == "`ctx: api`"
    assert format_context_line(RunContext(), projects=projects) is None
    assert format_context_line(None, projects=projects) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("answer\n\n`ctx: api @main`", RunContext("api", "main")),
        ("ctx: API", RunContext("api", None)),
        ("CTX: api @ feat/y", RunContext("api", "feat/y")),
        ("`ctx: api`\n`codex resume abc`", RunContext("api", None)),
        ("`ctx: api @one`\nmore\n`ctx: happy-gadgets @two`", RunContext("happy-gadgets", "two")),
        ("no footer here", None),
        ("ctx:", None),
    ],
)
def test_parse_context_line(
    projects: ProjectsConfig, text: str, expected: RunContext | None
) -> None:
    assert parse_context_line(text, projects=projects) == expected


def test_round_trip_of_the_footer(projects: ProjectsConfig) -> None:
    ctx = RunContext(project="happy-gadgets", branch="feat/x")
    line = format_context_line(ctx, projects=projects)
    assert line is not None
    assert parse_context_line(f"done\n\n{line}", projects=projects) == ctx


def test_unknown_project_in_ctx_line(projects: ProjectsConfig) -> None:
    with pytest.raises(DirectiveError) as info:
        parse_context_line("`ctx: gone @main`", projects=projects)
    assert str(info.value) == (
        "unknown project 'gone' in ctx line; start a new thread or add it back to your config"
    )


def test_no_reply_text_means_no_context(projects: ProjectsConfig) -> None:
    assert parse_context_line(None, projects=projects) is None
    assert parse_context_line("", projects=projects) is None
