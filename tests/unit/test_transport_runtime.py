"""TransportRuntime: message/context/engine resolution order and the plugin-facing helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.directives import DirectiveError
from takopi.model import ResumeToken
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry, RunnerUnavailableError
from takopi.runners.mock import ScriptRunner
from takopi.transport_runtime import ResolvedRunner, TransportRuntime
from tests.support.git_repos import make_repo


def make_router(default: str = "codex") -> AutoRouter:
    return AutoRouter(
        [
            RunnerEntry("codex", ScriptRunner(engine="codex")),
            RunnerEntry("claude", ScriptRunner(engine="claude")),
            RunnerEntry("pi", ScriptRunner(engine="pi"), "missing_cli", "pi not found on PATH"),
            RunnerEntry("opencode", ScriptRunner(engine="opencode"), "bad_config", "bad model"),
        ],
        default_engine=default,
    )


def make_projects(tmp_path: Path, default_project: str | None = None) -> ProjectsConfig:
    return ProjectsConfig(
        projects={
            "web": ProjectConfig(alias="Web", path=tmp_path / "web", default_engine="claude"),
            "api": ProjectConfig(alias="api", path=tmp_path / "api", chat_id=-100),
        },
        default_project=default_project,
        chat_map={-100: "api"},
    )


@pytest.fixture
def runtime(tmp_path: Path) -> TransportRuntime:
    return TransportRuntime(
        router=make_router(),
        projects=make_projects(tmp_path),
        allowlist=["takopi-slack", "takopi"],
        config_path=tmp_path / "takopi.toml",
        plugin_configs={"slack": {"channels": ["a"], "nested": {"k": 1}}},
        watch_config=True,
    )


# -- context resolution order -----------------------------------------------------------------


def test_reply_ctx_beats_directives_and_ambient(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(
        text="/web @dev do it",
        reply_text="answer\n`ctx: api @fix`",
        ambient_context=RunContext(project="web", branch="amb"),
        chat_id=-100,
    )
    assert resolved.context == RunContext(project="api", branch="fix")
    assert resolved.context_source == "reply_ctx"
    assert resolved.prompt == "do it"


def test_directives_beat_ambient_and_default(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(
        text="/web hello", ambient_context=RunContext(project="api", branch="amb"), chat_id=-100
    )
    assert resolved.context == RunContext(project="web", branch=None)
    assert resolved.context_source == "directives"


def test_directive_project_keeps_ambient_branch_only_for_same_project(
    runtime: TransportRuntime,
) -> None:
    same = runtime.resolve_message(
        text="/web hello", ambient_context=RunContext(project="web", branch="amb")
    )
    assert same.context == RunContext(project="web", branch="amb")


def test_directive_branch_uses_ambient_project(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(
        text="@feat/x hello", ambient_context=RunContext(project="web", branch="amb")
    )
    assert resolved.context == RunContext(project="web", branch="feat/x")
    assert resolved.context_source == "directives"


def test_directive_branch_uses_chat_project_without_ambient(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(text="@feat/x hello", chat_id=-100)
    assert resolved.context == RunContext(project="api", branch="feat/x")


def test_ambient_beats_chat_project(runtime: TransportRuntime) -> None:
    ambient = RunContext(project="web", branch="b")
    resolved = runtime.resolve_message(text="hello", ambient_context=ambient, chat_id=-100)
    assert resolved.context == ambient
    assert resolved.context_source == "ambient"


def test_empty_ambient_is_ignored(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(text="hello", ambient_context=RunContext(), chat_id=-100)
    assert resolved.context == RunContext(project="api")
    assert resolved.context_source == "default_project"


def test_chat_project_beats_global_default(tmp_path: Path) -> None:
    runtime = TransportRuntime(
        router=make_router(), projects=make_projects(tmp_path, default_project="web")
    )
    assert runtime.resolve_message(text="x", chat_id=-100).context == RunContext(project="api")
    other = runtime.resolve_message(text="x", chat_id=42)
    assert other.context == RunContext(project="web")
    assert other.context_source == "default_project"


def test_no_context_at_all(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(text="hello", chat_id=7)
    assert resolved.context is None
    assert resolved.context_source == "none"
    assert resolved.engine_override is None


def test_directive_errors_propagate(runtime: TransportRuntime) -> None:
    with pytest.raises(DirectiveError, match="multiple engine directives"):
        runtime.resolve_message(text="/codex /claude hi")
    with pytest.raises(DirectiveError, match="unknown project 'gone'"):
        runtime.resolve_message(text="hi", reply_text="`ctx: gone`")


# -- resume lines and prompt -----------------------------------------------------------------


def test_resume_line_in_text_beats_reply_and_is_stripped(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(
        text="claude resume mine\nkeep going", reply_text="done\n`codex resume theirs`"
    )
    assert resolved.resume_token == ResumeToken(engine="claude", value="mine")
    assert resolved.prompt == "keep going"


def test_reply_resume_line_is_used(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(text="more please", reply_text="ok\n`pi resume p1`")
    assert resolved.resume_token == ResumeToken(engine="pi", value="p1")
    assert resolved.prompt == "more please"


def test_prompt_of_only_resume_lines_becomes_continue(runtime: TransportRuntime) -> None:
    resolved = runtime.resolve_message(text="`codex resume abc`")
    assert resolved.resume_token == ResumeToken(engine="codex", value="abc")
    assert resolved.prompt == "continue"


# -- engines ---------------------------------------------------------------------------------


def test_engine_override_directive_then_project_default(runtime: TransportRuntime) -> None:
    assert runtime.resolve_message(text="/pi /web hi").engine_override == "pi"
    by_project = runtime.resolve_message(text="/web hi")
    assert by_project.engine_override == "claude"
    assert by_project.directive_engine is None
    assert runtime.resolve_message(text="/api hi").engine_override is None


def test_resolve_engine_precedence(runtime: TransportRuntime) -> None:
    web = RunContext(project="web")
    assert runtime.resolve_engine(engine_override="pi", context=web) == "pi"
    assert runtime.resolve_engine(engine_override=None, context=web) == "claude"
    assert runtime.resolve_engine(engine_override=None, context=RunContext("api")) == "codex"
    assert runtime.resolve_engine(engine_override=None, context=None) == "codex"


def test_resolve_runner(runtime: TransportRuntime) -> None:
    default = runtime.resolve_runner(resume_token=None, engine_override=None)
    assert isinstance(default, ResolvedRunner)
    assert (default.engine, default.available, default.issue) == ("codex", True, None)
    assert default.runner.engine == "codex"
    by_token = runtime.resolve_runner(
        resume_token=ResumeToken("claude", "t"), engine_override="codex"
    )
    assert by_token.engine == "claude"
    missing = runtime.resolve_runner(resume_token=None, engine_override="pi")
    assert (missing.available, missing.issue) == (False, "pi not found on PATH")
    with pytest.raises(RunnerUnavailableError):
        runtime.resolve_runner(resume_token=None, engine_override="nope")


def test_engine_listing(runtime: TransportRuntime) -> None:
    assert runtime.engine_ids == ("claude", "codex", "opencode", "pi")
    assert runtime.default_engine == "codex"
    assert runtime.available_engine_ids() == ("claude", "codex", "opencode")
    assert runtime.missing_engine_ids() == ("pi",)
    assert runtime.engine_ids_with_status("bad_config") == ("opencode",)
    assert runtime.engine_ids_with_status("load_error") == ()
    assert runtime.is_resume_line("`opencode resume x`")
    assert not runtime.is_resume_line("hello")


# -- projects and plugin settings ------------------------------------------------------------


def test_project_helpers(runtime: TransportRuntime) -> None:
    assert runtime.project_aliases() == ("Web", "api")
    assert runtime.normalize_project_key("WEB") == "web"
    assert runtime.normalize_project_key("nope") is None
    assert runtime.project_alias_for_key("web") == "Web"
    assert runtime.project_alias_for_key("nope") == "nope"
    assert runtime.project_default_engine("web") == "claude"
    assert runtime.project_default_engine("api") is None
    assert runtime.default_context_for_chat(-100) == RunContext(project="api")
    assert runtime.default_context_for_chat("-100") == RunContext(project="api")
    assert runtime.default_context_for_chat(5) is None
    assert runtime.format_context_line(RunContext("web", "b")) == "`ctx: Web @b`"
    assert runtime.format_context_line(None) is None


def test_plugin_config_is_a_copy(runtime: TransportRuntime) -> None:
    config = runtime.plugin_config("slack")
    assert config == {"channels": ["a"], "nested": {"k": 1}}
    config["nested"]["k"] = 2
    config["channels"].append("b")
    assert runtime.plugin_config("slack") == {"channels": ["a"], "nested": {"k": 1}}
    assert runtime.plugin_config("absent") == {}


def test_plain_attributes(runtime: TransportRuntime, tmp_path: Path) -> None:
    assert runtime.allowlist == ("takopi", "takopi-slack")
    assert runtime.config_path == tmp_path / "takopi.toml"
    assert runtime.watch_config is True
    assert isinstance(runtime._projects, ProjectsConfig)
    assert isinstance(runtime._router, AutoRouter)
    bare = TransportRuntime(router=make_router())
    assert bare.allowlist is None
    assert bare.config_path is None
    assert bare.project_aliases() == ()


def test_update_replaces_pieces_in_place(runtime: TransportRuntime, tmp_path: Path) -> None:
    new_router = AutoRouter([RunnerEntry("codex", ScriptRunner(engine="codex"))], "codex")
    new_projects = ProjectsConfig(
        projects={"cli": ProjectConfig(alias="cli", path=tmp_path / "cli")},
        default_project="cli",
    )
    runtime.update(router=new_router, projects=new_projects, plugin_configs={"x": {"a": 1}})
    assert runtime.engine_ids == ("codex",)
    assert runtime.project_aliases() == ("cli",)
    assert runtime.resolve_message(text="hi").context == RunContext(project="cli")
    assert runtime.plugin_config("slack") == {}
    assert runtime.plugin_config("x") == {"a": 1}
    # untouched pieces are kept
    assert runtime.allowlist == ("takopi", "takopi-slack")
    assert runtime.watch_config is True
    runtime.update(allowlist=None, watch_config=False)
    assert runtime.allowlist is None
    assert runtime.watch_config is False


def test_resolve_run_cwd(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "web")
    runtime = TransportRuntime(router=make_router(), projects=make_projects(tmp_path))
    assert runtime.resolve_run_cwd(None) is None
    assert runtime.resolve_run_cwd(RunContext("web")) == repo
    assert runtime.resolve_run_cwd(RunContext("web", "feat")) == repo / ".worktrees" / "feat"
    with pytest.raises(ConfigError, match=r"cannot contain '\.\.'"):
        runtime.resolve_run_cwd(RunContext("web", "../x"))
