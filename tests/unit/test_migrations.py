"""Config migrations: legacy-telegram and topics-scope (core-config)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from takopi.config import ConfigError, read_config, write_config
from takopi.config_migrations import (
    migrate_config,
    migrate_config_file,
    migrate_legacy_telegram,
    migrate_topics_scope,
)
from takopi.settings import load_settings


def test_legacy_telegram_moves_keys_and_sets_transport() -> None:
    config = {"bot_token": "1:abc", "chat_id": 42, "default_engine": "codex"}
    assert migrate_legacy_telegram(config) is True
    assert config == {
        "default_engine": "codex",
        "transports": {"telegram": {"bot_token": "1:abc", "chat_id": 42}},
        "transport": "telegram",
    }
    assert migrate_legacy_telegram(config) is False  # idempotent


def test_legacy_telegram_keeps_explicit_values_and_transport() -> None:
    config = {
        "chat_id": 1,
        "transport": "console",
        "transports": {"telegram": {"chat_id": 2, "bot_token": "t"}},
    }
    assert migrate_legacy_telegram(config) is True
    assert config == {
        "transport": "console",
        "transports": {"telegram": {"chat_id": 2, "bot_token": "t"}},
    }


def test_legacy_telegram_rejects_non_table_transports() -> None:
    with pytest.raises(ConfigError, match=r"Invalid `transports`; expected a table\."):
        migrate_legacy_telegram({"bot_token": "x", "transports": "nope"})


@pytest.mark.parametrize(
    ("mode", "scope"), [("multi_project_chat", "main"), ("per_project_chat", "projects")]
)
def test_topics_scope(mode: str, scope: str) -> None:
    config = {"transports": {"telegram": {"topics": {"enabled": True, "mode": mode}}}}
    assert migrate_topics_scope(config) is True
    assert config == {"transports": {"telegram": {"topics": {"enabled": True, "scope": scope}}}}
    assert migrate_topics_scope(config) is False


def test_topics_scope_rejects_other_modes(tmp_path: Path) -> None:
    config = {"transports": {"telegram": {"topics": {"mode": "everything"}}}}
    with pytest.raises(ConfigError) as info:
        migrate_topics_scope(config, config_path=tmp_path / "t.toml")
    message = str(info.value)
    assert message.startswith("Invalid `transports.telegram.topics.mode` 'everything' in ")
    assert "'multi_project_chat', 'per_project_chat'" in message


def test_nothing_to_migrate() -> None:
    config = {"transports": {"telegram": {"topics": {"scope": "all"}}}}
    assert migrate_config(config) == []
    assert config == {"transports": {"telegram": {"topics": {"scope": "all"}}}}


def test_migrate_config_file_rewrites_only_when_needed(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    write_config(
        {
            "bot_token": "1:abc",
            "chat_id": 7,
            "transports": {"telegram": {"topics": {"mode": "per_project_chat"}}},
        },
        path,
    )
    assert migrate_config_file(path) == ["legacy-telegram", "topics-scope"]
    assert read_config(path) == {
        "transport": "telegram",
        "transports": {
            "telegram": {"bot_token": "1:abc", "chat_id": 7, "topics": {"scope": "projects"}}
        },
    }
    mtime = path.stat().st_mtime_ns
    assert migrate_config_file(path) == []
    assert path.stat().st_mtime_ns == mtime


def test_load_settings_migrates_rewrites_and_logs(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    path.write_text('bot_token = "123:abc"\nchat_id = "-100200"\n')
    with capture_logs() as logs:
        settings, resolved = load_settings(path)
    assert resolved == path
    telegram = settings.transports.telegram
    assert telegram is not None
    assert (telegram.bot_token, telegram.chat_id) == ("123:abc", -100200)
    assert settings.transport == "telegram"
    assert read_config(path)["transports"]["telegram"]["bot_token"] == "123:abc"
    assert "bot_token" not in read_config(path)
    migrated = [e for e in logs if e["event"] == "config.migrated"]
    assert len(migrated) == 1
    assert migrated[0]["migrations"] == ["legacy-telegram"]
