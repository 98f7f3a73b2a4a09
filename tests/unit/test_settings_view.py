"""The supervisor's settings come from a child process (``takopi.supervisor.config_check``)
as plain data; every accessor must answer as the pydantic settings validated in-process do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from takopi.config import ConfigError
from takopi.settings import load_settings, validate_settings
from takopi.settings_view import SettingsAccess
from takopi.supervisor.config_check import load_settings_view

pytestmark = pytest.mark.timeout(120)

ENGINES = ["claude", "codex", "opencode", "pi"]

FULL: dict[str, Any] = {
    "watch_config": True,
    "default_engine": " claude ",
    "default_project": "Web",
    "transport": "telegram",
    "transports": {
        "telegram": {
            "bot_token": "123:abc",
            "chat_id": "-100777",
            "session_mode": "chat",
            "topics": {"enabled": True, "scope": "projects"},
            "files": {"enabled": True, "deny_globs": ["*.key"]},
        },
        "matrix": {"homeserver": "https://m.example", "rooms": ["a", "b"]},
    },
    "projects": {
        "Web": {"path": "repos/web", "default_engine": "Codex", "chat_id": -100555},
        "api": {"path": "/srv/api", "worktrees_dir": "/wt", "worktree_base": "dev"},
    },
    "plugins": {
        "enabled": ["codex", "", "matrix"],
        "foreign": {"python": "venvs/foreign/bin/python", "x": 1},
        "other": {"python": "~/py/bin/python3"},
    },
    "codex": {"model": "o3", "extra_args": ["--fast"]},
    "supervisor": {"engine_idle_s": 5, "restart": {"max_restarts": 3}},
}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "takopi.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def _answers(settings: SettingsAccess, path: Path) -> dict[str, Any]:
    """Everything the supervisor reads from its settings."""
    projects = settings.to_projects_config(config_path=path, engine_ids=ENGINES)
    return {
        "fields": (
            settings.watch_config,
            settings.default_engine,
            settings.default_project,
            settings.transport,
        ),
        "telegram": settings.transport_config("telegram", config_path=path),
        "matrix": settings.transport_config("matrix", config_path=path),
        "absent transport": settings.transport_config("slack", config_path=path),
        "transport tables": settings.transport_tables(),
        "allowlist": settings.plugins_allowlist(),
        "plugin tables": settings.plugin_configs(),
        "foreign python": settings.plugin_python("foreign", config_path=path),
        "other python": settings.plugin_python("other", config_path=path),
        "no python": settings.plugin_python("codex", config_path=path),
        "codex": settings.engine_config("codex", config_path=path),
        "claude": settings.engine_config("claude", config_path=path),
        "supervisor": settings.extra_table("supervisor"),
        "aliases": settings.project_aliases(),
        "projects": (projects.projects, projects.default_project, projects.chat_map),
    }


def test_the_view_answers_as_the_validated_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL)
    view = load_settings_view(path)
    settings, _ = load_settings(path)
    assert _answers(view, path) == _answers(settings, path)
    # Spot checks that the comparison above compares something real.
    answers = _answers(view, path)
    assert answers["telegram"]["chat_id"] == -100777
    assert answers["telegram"]["topics"] == {"enabled": True, "scope": "projects"}
    assert answers["fields"] == (True, "claude", "Web", "telegram")
    assert answers["allowlist"] == ["codex", "matrix"]
    assert answers["foreign python"] == str(tmp_path / "venvs/foreign/bin/python")
    assert answers["other python"] == os.path.expanduser("~/py/bin/python3")
    assert answers["projects"][0]["web"].path == tmp_path / "repos/web"
    assert answers["projects"][2] == {-100555: "web"}
    assert answers["supervisor"] == {"engine_idle_s": 5, "restart": {"max_restarts": 3}}


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    view = load_settings_view(path)
    defaults = validate_settings({}, config_path=path)
    assert (view.default_engine, view.transport, view.watch_config) == (
        defaults.default_engine,
        defaults.transport,
        defaults.watch_config,
    )
    with pytest.raises(ConfigError) as info:
        view.transport_config("telegram", config_path=path)
    with pytest.raises(ConfigError) as reference:
        defaults.transport_config("telegram", config_path=path)
    assert str(info.value) == str(reference.value)
    assert "Missing [transports.telegram]" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"watch_config": "maybe"},
        {"projects": {"web": {"path": "x", "typo": 1}}},
        {"transports": {"telegram": {"bot_token": "1:a", "chat_id": "not a number"}}},
        {"bot_token": "1:a"},  # legacy layout without chat_id: migrated, then invalid
    ],
)
def test_an_invalid_config_is_refused_with_the_validators_message(
    tmp_path: Path, data: dict[str, Any]
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_settings_view(path)
    with pytest.raises(ConfigError) as reference:
        load_settings(path)
    assert str(info.value) == str(reference.value)
    assert str(info.value).startswith(("Invalid", "Missing"))


def test_environment_overrides_reach_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, {"default_engine": "codex"})
    monkeypatch.setenv("TAKOPI__DEFAULT_ENGINE", "pi")
    assert load_settings_view(path).default_engine == "pi"


def test_a_legacy_file_is_migrated_by_the_check(tmp_path: Path) -> None:
    path = _write(tmp_path, {"bot_token": "1:abc", "chat_id": 42})
    view = load_settings_view(path)
    assert view.transport_config("telegram")["chat_id"] == 42
    assert "[transports.telegram]" in path.read_text()  # rewritten, as load_settings does


def test_an_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_settings_view(path)
    assert str(path) in str(info.value)


def test_toml_dates_and_times_come_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    path.write_text(
        "[scripted]\nat = 22:00:00\non = 2026-12-06\n"
        "local = 2026-12-06T01:02:03\nzoned = 2026-12-06T01:02:03.5+02:00\n"
    )
    table = load_settings_view(path).engine_config("scripted")
    assert table == load_settings(path)[0].engine_config("scripted")
    assert type(table["on"]).__name__ == "date" and type(table["at"]).__name__ == "time"
    assert table["zoned"].utcoffset() is not None


def test_a_validated_telegram_table_reads_like_the_model(tmp_path: Path) -> None:
    """What the transport worker gets (the supervisor's validated table) answers every
    attribute as the pydantic model does, without importing pydantic."""
    from takopi.settings_view import AttributeView, ValidatedTable
    from takopi.telegram.backend import telegram_settings

    path = _write(tmp_path, FULL)
    table = load_settings_view(path).transport_config("telegram", config_path=path)
    view = telegram_settings(ValidatedTable(table), path)
    model = telegram_settings(dict(table), path)
    assert isinstance(view, AttributeView) and not isinstance(model, AttributeView)
    for name in type(model).model_fields:
        value = getattr(model, name)
        if hasattr(value, "model_dump"):
            assert getattr(view, name).model_dump() == value.model_dump(), name
            for sub in type(value).model_fields:
                assert getattr(getattr(view, name), sub) == getattr(value, sub), (name, sub)
        else:
            assert getattr(view, name) == value, name
    assert view.model_dump() == model.model_dump()
    dumped = view.model_dump()
    dumped["files"]["deny_globs"].append("changed")
    assert "changed" not in view.files.deny_globs  # a copy, as the model's
    with pytest.raises(AttributeError):
        _ = view.no_such_setting


def test_the_check_started_before_the_supervisors_imports_is_taken_for_its_path(
    tmp_path: Path,
) -> None:
    from takopi.supervisor import early

    path = _write(tmp_path, {"default_engine": "pi"})
    early.start_config_check(str(path))
    assert early.take_config_check(tmp_path / "other.toml") is None  # discarded
    assert early.take_config_check(path) is None  # nothing left
    early.start_config_check(str(path))
    check = early.take_config_check(path)
    assert check is not None and check.result().default_engine == "pi"


def test_an_early_check_of_a_file_written_since_is_not_used(tmp_path: Path) -> None:
    """Onboarding writes the config after the check started: the check is stale."""
    from takopi.supervisor import early

    path = tmp_path / "takopi.toml"
    early.start_config_check(str(path))  # no file yet
    _write(tmp_path, {"default_engine": "pi"})
    assert early.take_config_check(path) is None


def test_an_early_check_is_not_used_once_an_override_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI sets ``TAKOPI__DEFAULT_ENGINE`` (demo fallback) after the check started."""
    from takopi.supervisor import early

    path = _write(tmp_path, {})
    early.start_config_check(str(path))
    monkeypatch.setenv("TAKOPI__DEFAULT_ENGINE", "demo")
    assert early.take_config_check(path) is None
