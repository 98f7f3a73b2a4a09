"""AutoRouter: runner selection, availability and resume-line routing (behavior.md §1.5, §1.8)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from takopi.model import ResumeToken
from takopi.router import AutoRouter, RunnerEntry, RunnerUnavailableError
from takopi.runners.mock import ScriptRunner

R_CLAUDE = re.compile(r"(?im)^\s*`?claude\s+(?:--resume|-r)\s+(?P<token>[^`\s]+)`?\s*$")
R_GREEDY = re.compile(r"(?im)^\s*`?(?:codex|zed)\s+resume\s+(?P<token>[^`\s]+)`?\s*$")


@dataclass(eq=False)
class ClaudeLike(ScriptRunner):
    """A scripted runner with claude's resume-line format."""

    engine: str = "claude"

    def __post_init__(self) -> None:
        self.resume_re = R_CLAUDE

    def format_resume(self, token: ResumeToken) -> str:
        return f"`claude --resume {token.value}`"


@dataclass(eq=False)
class Greedy(ScriptRunner):
    """Also claims codex-style lines (to observe router order)."""

    engine: str = "zed"

    def __post_init__(self) -> None:
        self.resume_re = R_GREEDY


def make_router(default: str = "codex", **statuses: tuple[str, str]) -> AutoRouter:
    runners = {
        "codex": ScriptRunner(engine="codex"),
        "claude": ClaudeLike(),
        "pi": ScriptRunner(engine="pi"),
    }
    entries = []
    for engine, runner in runners.items():
        status, issue = statuses.get(engine, ("ok", None))  # type: ignore[assignment]
        entries.append(RunnerEntry(engine=engine, runner=runner, status=status, issue=issue))  # type: ignore[arg-type]
    return AutoRouter(entries, default_engine=default)


def test_engine_ids_are_sorted_and_default_is_kept() -> None:
    router = make_router(default="pi")
    assert router.engine_ids == ("claude", "codex", "pi")
    assert router.default_engine == "pi"
    assert router.default_entry.engine == "pi"
    assert [entry.engine for entry in router.entries] == ["claude", "codex", "pi"]


def test_default_engine_must_be_configured() -> None:
    with pytest.raises(ValueError, match="default engine 'nope'"):
        AutoRouter([RunnerEntry(engine="codex", runner=ScriptRunner())], default_engine="nope")


def test_duplicate_entries_are_rejected() -> None:
    entries = [RunnerEntry("codex", ScriptRunner()), RunnerEntry("codex", ScriptRunner())]
    with pytest.raises(ValueError, match="duplicate engine 'codex'"):
        AutoRouter(entries, default_engine="codex")


def test_runner_for_default_and_override() -> None:
    router = make_router()
    assert router.runner_for(None).engine == "codex"
    assert router.runner_for(None, engine_override="claude").engine == "claude"
    assert router.entry_for("pi").engine == "pi"
    assert router.entry_for(None).engine == "codex"


def test_resume_token_engine_wins_over_override() -> None:
    router = make_router()
    token = ResumeToken(engine="pi", value="s1")
    assert router.runner_for(token, engine_override="claude").engine == "pi"
    assert router.entry_for(token).engine == "pi"


def test_unavailable_engine_raises_with_issue() -> None:
    router = make_router(pi=("missing_cli", "pi not found on PATH"))
    with pytest.raises(RunnerUnavailableError) as info:
        router.runner_for(None, engine_override="pi")
    assert str(info.value) == "engine 'pi' is unavailable: pi not found on PATH"
    assert info.value.engine == "pi"
    assert info.value.issue == "pi not found on PATH"
    with pytest.raises(RunnerUnavailableError):
        router.runner_for(ResumeToken(engine="pi", value="x"))


def test_bad_config_counts_as_available() -> None:
    router = make_router(claude=("bad_config", "warning"), pi=("load_error", "ImportError: boom"))
    assert router.entry_for("claude").available
    assert not router.entry_for("pi").available
    assert [entry.engine for entry in router.available_entries] == ["claude", "codex"]
    assert router.runner_for(None, engine_override="claude").engine == "claude"


def test_unknown_engine_is_unavailable() -> None:
    router = make_router()
    with pytest.raises(RunnerUnavailableError, match="engine 'gemini' is unavailable"):
        router.runner_for(None, engine_override="gemini")
    with pytest.raises(RunnerUnavailableError):
        router.runner_for(ResumeToken(engine="gemini", value="x"))


def test_resume_line_of_a_non_default_engine_routes_to_it() -> None:
    router = make_router(default="codex")
    token = router.extract_resume("please continue\n`claude --resume abc-123`")
    assert token == ResumeToken(engine="claude", value="abc-123")
    assert router.runner_for(token).engine == "claude"


def test_last_matching_line_wins_within_a_runner() -> None:
    router = make_router()
    text = "`codex resume first`\nsome text\ncodex resume second"
    assert router.extract_resume(text) == ResumeToken(engine="codex", value="second")


def test_router_order_first_runner_wins() -> None:
    # claude is polled before codex even though the codex line comes last.
    router = make_router()
    text = "`claude --resume c1`\n`codex resume x1`"
    assert router.extract_resume(text) == ResumeToken(engine="claude", value="c1")
    # two runners that both claim a line: the alphabetically first engine wins.
    overlapping = AutoRouter(
        [RunnerEntry("zed", Greedy()), RunnerEntry("codex", ScriptRunner(engine="codex"))],
        default_engine="zed",
    )
    assert overlapping.engine_ids == ("codex", "zed")
    assert overlapping.extract_resume("codex resume shared") == ResumeToken("codex", "shared")


def test_unavailable_engines_are_still_polled() -> None:
    router = make_router(pi=("missing_cli", "pi not found on PATH"))
    assert router.extract_resume("pi resume p1") == ResumeToken(engine="pi", value="p1")


def test_resolve_resume_prefers_message_text_over_reply() -> None:
    router = make_router()
    assert router.resolve_resume("codex resume mine", "claude --resume theirs") == ResumeToken(
        "codex", "mine"
    )
    assert router.resolve_resume("no token", "claude --resume theirs") == ResumeToken(
        "claude", "theirs"
    )
    assert router.resolve_resume("nothing", None) is None
    assert router.extract_resume(None) is None
    assert router.extract_resume("") is None


def test_is_resume_line_checks_every_runner() -> None:
    router = make_router()
    assert router.is_resume_line("`claude -r abc`")
    assert router.is_resume_line("  pi resume zzz  ")
    assert not router.is_resume_line("codex resume")
    assert not router.is_resume_line("resume codex abc")


def test_format_resume_uses_the_token_engine() -> None:
    router = make_router()
    assert router.format_resume(ResumeToken("claude", "abc")) == "`claude --resume abc`"
    assert router.format_resume(ResumeToken("pi", "p")) == "`pi resume p`"
