"""Validated settings (pydantic-settings) for ``takopi.toml``.

Sources, highest priority first: init kwargs > environment (``TAKOPI__A__B``) > dotenv > the
TOML file. Strings are whitespace-stripped. Unknown top-level keys are allowed (engine tables
such as ``[codex]``); nested tables that takopi owns reject unknown keys so that typos surface.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from takopi.config import (
    HOME_CONFIG_PATH,
    ConfigError,
    read_config,
    resolve_config_path,
    write_config,
)
from takopi.config_migrations import migrate_config
from takopi.logging import get_logger
from takopi.settings_tables import (
    DEFAULT_DENY_GLOBS,
    ChatId,
    NonEmptyStr,
    OwnedTable,
    TelegramFilesSettings,
    TelegramTopicsSettings,
    TelegramTransportSettings,
)
from takopi.settings_view import (
    ProjectTableLike,
    SettingsAccess,
    missing_telegram_error,
    where,
)

log = get_logger(__name__)


class TransportsSettings(BaseModel):
    """``[transports]``: telegram is typed, any other ``[transports.<id>]`` is free-form."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    telegram: TelegramTransportSettings | None = None

    @model_validator(mode="after")
    def _other_transports_are_tables(self) -> TransportsSettings:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(f"transports.{key} must be a table")
        return self


class ProjectSettings(OwnedTable):
    """One ``[projects.<alias>]`` table as written (paths not yet resolved)."""

    path: NonEmptyStr
    worktrees_dir: NonEmptyStr = ".worktrees"
    default_engine: str | None = None
    worktree_base: str | None = None
    chat_id: ChatId | None = None


class PluginsSettings(BaseModel):
    """``[plugins]``: ``enabled`` allowlist plus one free-form table per plugin id."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    enabled: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _plugin_tables(self) -> PluginsSettings:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(f"plugins.{key} must be a table")
        return self


# The TOML data for the settings being built (set by ``load_settings``/``validate_settings``).
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("takopi_toml_data", default=None)
_use_env: ContextVar[bool] = ContextVar("takopi_settings_use_env", default=True)


class _TomlDataSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the (already migrated) TOML document."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = _toml_data.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get() or {})


class TakopiSettings(SettingsAccess, BaseSettings):
    """The whole ``takopi.toml``, validated."""

    model_config = SettingsConfigDict(
        env_prefix="TAKOPI__",
        env_nested_delimiter="__",
        extra="allow",
        str_strip_whitespace=True,
        case_sensitive=False,
    )

    watch_config: bool = False
    default_engine: NonEmptyStr = "codex"
    default_project: str | None = None
    transport: NonEmptyStr = "telegram"
    transports: TransportsSettings = Field(default_factory=TransportsSettings)
    projects: dict[str, ProjectSettings] = Field(default_factory=dict)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _TomlDataSource(settings_cls)
        if not _use_env.get():
            return (init_settings, toml)
        return (init_settings, env_settings, dotenv_settings, toml)

    @model_validator(mode="before")
    @classmethod
    def _legacy_guard(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("bot_token" in data or "chat_id" in data):
            raise ValueError(
                'Move bot_token/chat_id under [transports.telegram] and set transport = "telegram".'
            )
        return data

    # --- the reads :class:`SettingsAccess` builds its accessors on -------------------------

    def _top_level_extra(self) -> Mapping[str, Any]:
        return self.model_extra or {}

    def _transport_extra(self) -> Mapping[str, Any]:
        return self.transports.model_extra or {}

    def _telegram_dump(self) -> dict[str, Any] | None:
        telegram = self.transports.telegram
        return None if telegram is None else telegram.model_dump()

    def _telegram_chat_id(self) -> int | None:
        telegram = self.transports.telegram
        return None if telegram is None else telegram.chat_id

    def _plugins_enabled(self) -> list[str]:
        return self.plugins.enabled

    def _plugin_extra(self) -> Mapping[str, Any]:
        return self.plugins.model_extra or {}

    def _project_tables(self) -> Mapping[str, ProjectTableLike]:
        return self.projects


def settings_dump(settings: TakopiSettings) -> dict[str, Any]:
    """The validated settings as plain data, for :class:`~takopi.settings_view.SettingsView`."""
    return settings.model_dump()


@overload
def require_telegram_config(
    settings: TakopiSettings, config_path: Path | None = None
) -> TelegramTransportSettings: ...


@overload
def require_telegram_config(
    settings: Mapping[str, Any], config_path: Path | None = None
) -> tuple[str, int]: ...


def require_telegram_config(
    settings: TakopiSettings | Mapping[str, Any], config_path: Path | None = None
) -> TelegramTransportSettings | tuple[str, int]:
    """The ``[transports.telegram]`` settings; ConfigError when the table is missing.

    Called with a raw transport table (a dict, as third-party transports do), it returns
    ``(bot_token, chat_id)`` after the reference's checks instead.
    """
    if isinstance(settings, Mapping):
        token = settings.get("bot_token")
        if not isinstance(token, str) or not token.strip():
            raise ConfigError(f"Missing bot token{where(config_path)}.")
        chat_id = settings.get("chat_id")
        if chat_id is None:
            raise ConfigError(f"Missing chat_id{where(config_path)}.")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise ConfigError(f"Invalid `chat_id`{where(config_path)}; expected an integer.")
        return token.strip(), chat_id
    telegram = settings.transports.telegram
    if telegram is None:
        raise missing_telegram_error(config_path)
    return telegram


def format_validation_error(exc: ValidationError, config_path: Path | None = None) -> str:
    """One readable line per problem: ``dotted.key: message``."""
    lines: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "__root__")
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        # model-level validators already name the offending key in their message
        lines.append(f"{loc}: {msg}" if loc and not msg.startswith(f"{loc}.") else msg)
    head = f"Invalid config{where(config_path)}"
    if len(lines) == 1:
        return f"{head}: {lines[0]}"
    return head + ":\n" + "\n".join(f"- {line}" for line in lines)


@contextmanager
def _toml_source(data: dict[str, Any], *, use_env: bool) -> Iterator[None]:
    token = _toml_data.set(data)
    env_token = _use_env.set(use_env)
    try:
        yield
    finally:
        _use_env.reset(env_token)
        _toml_data.reset(token)


def validate_settings(
    data: dict[str, Any], *, config_path: Path | None = None, use_env: bool = True
) -> TakopiSettings:
    """Validate a config document; ConfigError on bad input.

    With ``use_env`` (default) ``TAKOPI__A__B`` environment variables override the document,
    as at startup; ``takopi config set`` validates the file alone with ``use_env=False``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid config{where(config_path)}: expected a table.")
    try:
        with _toml_source(data, use_env=use_env):
            return TakopiSettings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, config_path)) from exc


def normalized_value(settings: TakopiSettings, key: str) -> Any:
    """The validated value at dotted ``key`` (e.g. chat_id ``"123"`` → ``123``).

    Used by ``takopi config set`` to write back the normalized form; ``KeyError`` if the
    settings have no such key (then keep the raw value).
    """
    node: Any = settings.model_dump()
    for segment in key.split("."):
        if not isinstance(node, dict) or segment not in node:
            raise KeyError(key)
        node = node[segment]
    return node


def load_settings(
    path: str | os.PathLike[str] | None = None,
) -> tuple[TakopiSettings, Path]:
    """Read, migrate (rewriting the file if needed) and validate the config.

    Returns the settings and the resolved config path.
    """
    config_path = resolve_config_path(path)
    data = read_config(config_path)
    applied = migrate_config(data, config_path=config_path)
    if applied:
        write_config(data, config_path)
        log.info("config.migrated", path=str(config_path), migrations=applied)
    return validate_settings(data, config_path=config_path), config_path


def load_settings_if_exists(
    path: str | os.PathLike[str] | None = None,
) -> tuple[TakopiSettings, Path] | None:
    """Like :func:`load_settings`, but None when the config file does not exist."""
    config_path = resolve_config_path(path)
    if not config_path.exists():
        return None
    return load_settings(config_path)


__all__ = [
    "DEFAULT_DENY_GLOBS",
    "HOME_CONFIG_PATH",
    "PluginsSettings",
    "ProjectSettings",
    "TakopiSettings",
    "TelegramFilesSettings",
    "TelegramTopicsSettings",
    "TelegramTransportSettings",
    "TransportsSettings",
    "format_validation_error",
    "load_settings",
    "load_settings_if_exists",
    "normalized_value",
    "require_telegram_config",
    "resolve_config_path",
    "settings_dump",
    "validate_settings",
]
