"""Validated settings (pydantic-settings) for ``takopi.toml``.

Sources, highest priority first: init kwargs > environment (``TAKOPI__A__B``) > dotenv > the
TOML file. Strings are whitespace-stripped. Unknown top-level keys are allowed (engine tables
such as ``[codex]``); nested tables that takopi owns reject unknown keys so that typos surface.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping
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
from takopi.ids import RESERVED_CHAT_COMMANDS
from takopi.logging import get_logger
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.settings_tables import (
    DEFAULT_DENY_GLOBS,
    ChatId,
    NonEmptyStr,
    OwnedTable,
    TelegramFilesSettings,
    TelegramTopicsSettings,
    TelegramTransportSettings,
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


class TakopiSettings(BaseSettings):
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

    # --- accessors -------------------------------------------------------------------------

    def engine_config(self, engine_id: str, *, config_path: Path | None = None) -> dict[str, Any]:
        """The top-level ``[<engine_id>]`` table (``{}`` if absent); ConfigError if not a table."""
        value = (self.model_extra or {}).get(engine_id)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"Invalid `{engine_id}` config{_where(config_path)}; expected a table."
            )
        return dict(value)

    def transport_config(
        self, transport_id: str, *, config_path: Path | None = None
    ) -> dict[str, Any]:
        """Config for ``transport_id``: validated telegram settings, raw TOML dict otherwise."""
        if transport_id == "telegram":
            return require_telegram_config(self, config_path).model_dump()
        value = (self.transports.model_extra or {}).get(transport_id)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"Invalid `transports.{transport_id}`{_where(config_path)}; expected a table."
            )
        return dict(value)

    def plugins_allowlist(self) -> list[str] | None:
        """``plugins.enabled``, or None when empty (= every installed plugin)."""
        enabled = [name for name in self.plugins.enabled if name]
        return enabled or None

    def plugin_configs(self) -> dict[str, dict[str, Any]]:
        """Every ``[plugins.<id>]`` table, by id."""
        return {k: dict(v) for k, v in (self.plugins.model_extra or {}).items()}

    def plugin_config(self, plugin_id: str, *, config_path: Path | None = None) -> dict[str, Any]:
        """``[plugins.<plugin_id>]`` (``{}`` if absent); ConfigError if not a table."""
        value = (self.plugins.model_extra or {}).get(plugin_id)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"Invalid `plugins.{plugin_id}`{_where(config_path)}; expected a table."
            )
        return dict(value)

    def plugin_python(self, plugin_id: str, *, config_path: Path | None = None) -> str | None:
        """``[plugins.<id>] python``: the interpreter to run that plugin's worker under."""
        value = self.plugin_config(plugin_id, config_path=config_path).get("python")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"Invalid `plugins.{plugin_id}.python`{_where(config_path)}; "
                "expected a path to a Python interpreter."
            )
        python = os.path.expanduser(value.strip())
        if config_path is not None and os.sep in python and not os.path.isabs(python):
            python = str(Path(config_path).parent / python)
        return python

    def to_projects_config(
        self,
        *,
        config_path: Path,
        engine_ids: Iterable[str],
        reserved: Collection[str] = RESERVED_CHAT_COMMANDS,
    ) -> ProjectsConfig:
        """Resolve ``[projects.*]`` and ``default_project`` into a :class:`ProjectsConfig`."""
        return _build_projects(
            self, config_path=Path(config_path), engine_ids=engine_ids, reserved=reserved
        )


def _where(config_path: Path | None) -> str:
    return f" in {config_path}" if config_path is not None else ""


def _build_projects(
    settings: TakopiSettings,
    *,
    config_path: Path,
    engine_ids: Iterable[str],
    reserved: Collection[str],
) -> ProjectsConfig:
    engines = {e.lower() for e in engine_ids}
    reserved_lower = {r.lower() for r in reserved}
    telegram = settings.transports.telegram
    main_chat_id = telegram.chat_id if telegram is not None else None
    base_dir = config_path.expanduser().parent
    projects: dict[str, ProjectConfig] = {}
    chat_map: dict[int, str] = {}
    for alias, raw in settings.projects.items():
        key = alias.strip().lower()
        if not key:
            raise ConfigError(f"Invalid project alias {alias!r}{_where(config_path)}.")
        if key in engines:
            raise ConfigError(
                f"Invalid project alias {alias!r}; aliases must not match engine ids."
            )
        if key in reserved_lower:
            raise ConfigError(
                f"Invalid project alias {alias!r}; aliases must not match reserved commands."
            )
        if key in projects:
            raise ConfigError(f"Duplicate project alias {alias!r} (aliases are case-insensitive).")
        path = Path(raw.path).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        if raw.default_engine is not None and raw.default_engine.lower() not in engines:
            available = ", ".join(sorted(engines)) or "none"
            raise ConfigError(
                f"Unknown default engine {raw.default_engine!r} for project {alias!r}. "
                f"Available: {available}."
            )
        if raw.chat_id is not None:
            if raw.chat_id == main_chat_id:
                raise ConfigError(
                    f"Invalid `projects.{alias}.chat_id`; it must differ from "
                    "`transports.telegram.chat_id`."
                )
            if raw.chat_id in chat_map:
                other = projects[chat_map[raw.chat_id]].alias
                raise ConfigError(
                    f"Duplicate `chat_id` {raw.chat_id} for projects {other!r} and {alias!r}."
                )
            chat_map[raw.chat_id] = key
        projects[key] = ProjectConfig(
            alias=alias,
            path=path,
            worktrees_dir=Path(raw.worktrees_dir).expanduser(),
            default_engine=raw.default_engine.lower() if raw.default_engine else None,
            worktree_base=raw.worktree_base or None,
            chat_id=raw.chat_id,
        )
    default_project: str | None = None
    if settings.default_project:
        default_project = settings.default_project.strip().lower()
        if default_project not in projects:
            known = ", ".join(p.alias for p in projects.values()) or "none"
            raise ConfigError(
                f"Invalid default_project {settings.default_project!r}; "
                f"no such project. Known projects: {known}."
            )
    return ProjectsConfig(projects=projects, default_project=default_project, chat_map=chat_map)


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
            raise ConfigError(f"Missing bot token{_where(config_path)}.")
        chat_id = settings.get("chat_id")
        if chat_id is None:
            raise ConfigError(f"Missing chat_id{_where(config_path)}.")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise ConfigError(f"Invalid `chat_id`{_where(config_path)}; expected an integer.")
        return token.strip(), chat_id
    telegram = settings.transports.telegram
    if telegram is None:
        raise ConfigError(
            f"Missing [transports.telegram]{_where(config_path)}; "
            "set bot_token and chat_id (or run `takopi --onboard`)."
        )
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
    head = f"Invalid config{_where(config_path)}"
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
        raise ConfigError(f"Invalid config{_where(config_path)}: expected a table.")
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
    "validate_settings",
]
