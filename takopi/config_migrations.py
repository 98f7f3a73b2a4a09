"""In-place upgrades of older config layouts, applied before validation.

- ``legacy-telegram``: top-level ``bot_token`` / ``chat_id`` move to ``[transports.telegram]``
  and ``transport`` defaults to ``"telegram"``.
- ``topics-scope``: ``transports.telegram.topics.mode`` becomes ``scope``
  (``multi_project_chat`` → ``main``, ``per_project_chat`` → ``projects``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from takopi.config import ConfigError, read_config, write_config
from takopi.logging import get_logger

log = get_logger(__name__)

_LEGACY_TELEGRAM_KEYS = ("bot_token", "chat_id")
_TOPICS_MODE_TO_SCOPE = {"multi_project_chat": "main", "per_project_chat": "projects"}


def _where(config_path: Path | None) -> str:
    return f" in {config_path}" if config_path is not None else ""


def migrate_legacy_telegram(config: dict[str, Any], *, config_path: Path | None = None) -> bool:
    """Move top-level ``bot_token``/``chat_id`` under ``[transports.telegram]``."""
    legacy = {k: config[k] for k in _LEGACY_TELEGRAM_KEYS if k in config}
    if not legacy:
        return False
    transports = config.setdefault("transports", {})
    if not isinstance(transports, dict):
        raise ConfigError(f"Invalid `transports`{_where(config_path)}; expected a table.")
    telegram = transports.setdefault("telegram", {})
    if not isinstance(telegram, dict):
        raise ConfigError(f"Invalid `transports.telegram`{_where(config_path)}; expected a table.")
    for key, value in legacy.items():
        # An explicit [transports.telegram] value wins over the legacy top-level one.
        telegram.setdefault(key, value)
        del config[key]
    config.setdefault("transport", "telegram")
    return True


def migrate_topics_scope(config: dict[str, Any], *, config_path: Path | None = None) -> bool:
    """Replace ``transports.telegram.topics.mode`` by the equivalent ``scope``."""
    transports = config.get("transports")
    telegram = transports.get("telegram") if isinstance(transports, dict) else None
    topics = telegram.get("topics") if isinstance(telegram, dict) else None
    if not isinstance(topics, dict) or "mode" not in topics:
        return False
    mode = topics["mode"]
    scope = _TOPICS_MODE_TO_SCOPE.get(mode) if isinstance(mode, str) else None
    if scope is None:
        expected = ", ".join(repr(m) for m in _TOPICS_MODE_TO_SCOPE)
        raise ConfigError(
            f"Invalid `transports.telegram.topics.mode` {mode!r}{_where(config_path)}; "
            f"expected one of {expected}. Use `scope` (auto, main, projects, all) instead."
        )
    del topics["mode"]
    topics.setdefault("scope", scope)
    return True


MIGRATIONS: tuple[tuple[str, Callable[..., bool]], ...] = (
    ("legacy-telegram", migrate_legacy_telegram),
    ("topics-scope", migrate_topics_scope),
)
"""Every migration, by name, in the order they run."""


def migrate_config(config: dict[str, Any], *, config_path: Path | None = None) -> list[str]:
    """Apply every migration to ``config`` in place; return the names of those applied."""
    return [name for name, fn in MIGRATIONS if fn(config, config_path=config_path)]


def migrate_config_file(path: str | os.PathLike[str]) -> list[str]:
    """Migrate the config file at ``path``, rewriting it (atomically) if anything changed."""
    cfg_path = Path(path).expanduser()
    config = read_config(cfg_path)
    applied = migrate_config(config, config_path=cfg_path)
    if applied:
        write_config(config, cfg_path)
        log.info("config.migrated", path=str(cfg_path), migrations=applied)
    return applied


__all__ = [
    "MIGRATIONS",
    "migrate_config",
    "migrate_config_file",
    "migrate_legacy_telegram",
    "migrate_topics_scope",
]
