"""``to_projects_config``: paths, alias rules, chat ids, default project (core-config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.config import ConfigError
from takopi.projects import ProjectConfig
from takopi.settings import validate_settings

ENGINES = ["claude", "codex", "opencode", "pi"]


def _projects(tmp_path: Path, data: dict[str, Any], **extra: Any) -> Any:
    settings = validate_settings({"projects": data, **extra})
    return settings.to_projects_config(config_path=tmp_path / "takopi.toml", engine_ids=ENGINES)


def _error(tmp_path: Path, data: dict[str, Any], **extra: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _projects(tmp_path, data, **extra)
    return str(info.value)


def test_paths_are_resolved(tmp_path: Path) -> None:
    cfg = _projects(
        tmp_path,
        {
            "Home": {"path": "~/dev/home"},
            "rel": {"path": "repos/rel", "worktrees_dir": "/abs/wt"},
            "abs": {"path": "/srv/abs", "default_engine": "Claude", "worktree_base": "develop"},
        },
    )
    home = cfg.resolve("home")
    assert home == ProjectConfig(alias="Home", path=Path.home() / "dev/home")
    assert home.worktrees_root == Path.home() / "dev/home/.worktrees"
    rel = cfg.resolve("REL")
    assert rel.path == tmp_path / "repos/rel"
    assert rel.worktrees_root == Path("/abs/wt")
    abs_project = cfg.resolve("abs")
    assert abs_project.default_engine == "claude"
    assert abs_project.worktree_base == "develop"
    assert cfg.aliases() == ["Home", "rel", "abs"]
    assert cfg.default_project is None


def test_default_project_case_insensitive(tmp_path: Path) -> None:
    cfg = _projects(tmp_path, {"Takopi": {"path": "/t"}}, default_project="TAKOPI")
    assert cfg.default_project == "takopi"
    message = _error(tmp_path, {"Takopi": {"path": "/t"}}, default_project="other")
    assert message == "Invalid default_project 'other'; no such project. Known projects: Takopi."


def test_alias_must_not_be_an_engine_or_reserved(tmp_path: Path) -> None:
    assert _error(tmp_path, {"Codex": {"path": "/x"}}) == (
        "Invalid project alias 'Codex'; aliases must not match engine ids."
    )
    for reserved in ("cancel", "file", "new", "agent", "model", "reasoning", "trigger", "ctx"):
        assert _error(tmp_path, {reserved: {"path": "/x"}}) == (
            f"Invalid project alias {reserved!r}; aliases must not match reserved commands."
        )
    # hyphenated aliases are fine
    assert _projects(tmp_path, {"happy-gadgets": {"path": "/x"}}).resolve("happy-gadgets")


def test_duplicate_aliases_case_insensitive(tmp_path: Path) -> None:
    assert _error(tmp_path, {"Web": {"path": "/a"}, "web": {"path": "/b"}}) == (
        "Duplicate project alias 'web' (aliases are case-insensitive)."
    )


def test_chat_ids(tmp_path: Path) -> None:
    telegram = {"transports": {"telegram": {"bot_token": "t", "chat_id": -100}}}
    cfg = _projects(
        tmp_path,
        {"a": {"path": "/a", "chat_id": -1}, "b": {"path": "/b", "chat_id": "-2"}},
        **telegram,
    )
    assert cfg.chat_map == {-1: "a", -2: "b"}
    assert cfg.project_for_chat("-2") == "b"
    assert _error(tmp_path, {"a": {"path": "/a", "chat_id": -100}}, **telegram) == (
        "Invalid `projects.a.chat_id`; it must differ from `transports.telegram.chat_id`."
    )
    assert (
        _error(tmp_path, {"a": {"path": "/a", "chat_id": 5}, "B": {"path": "/b", "chat_id": 5}})
        == "Duplicate `chat_id` 5 for projects 'a' and 'B'."
    )


def test_project_default_engine_must_exist(tmp_path: Path) -> None:
    assert _error(tmp_path, {"a": {"path": "/a", "default_engine": "gemini"}}) == (
        "Unknown default engine 'gemini' for project 'a'. Available: claude, codex, opencode, pi."
    )


def test_custom_reserved_words(tmp_path: Path) -> None:
    settings = validate_settings({"projects": {"deploy": {"path": "/d"}}})
    with pytest.raises(ConfigError, match="reserved commands"):
        settings.to_projects_config(
            config_path=tmp_path / "t.toml", engine_ids=ENGINES, reserved={"deploy"}
        )
