"""Read access to validated settings, without pydantic.

:class:`SettingsAccess` holds the accessors of the whole config (engine, transport and plugin
tables, the plugin allowlist, ``[projects]`` resolution) on top of a few primitive reads.
:class:`takopi.settings.TakopiSettings` (the pydantic model) implements those reads on its
fields; :class:`SettingsView` implements them on the plain dump of a validated model. The
supervisor holds a view: it validates the config in a short-lived process
(:mod:`takopi.supervisor.config_check`) and so never imports pydantic (about 5 MiB for a
long-lived process that only reads a dozen values).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from takopi.config import ConfigError
from takopi.ids import RESERVED_CHAT_COMMANDS
from takopi.projects import ProjectConfig, ProjectsConfig

VALIDATED_TRANSPORTS = frozenset({"telegram"})
"""Transports whose table takopi's own config model validates (the rest are free-form)."""

FILES_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""``/file put``: the largest file a bot may download from Telegram."""
FILES_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
"""``/file get``: the largest file a bot may send."""


class ValidatedTable(dict[str, Any]):
    """A config table takopi's own model has validated already (a plain dict to plugins):
    the supervisor hands the transport worker its ``[transports.telegram]`` as one."""


class AttributeView:
    """Read-only attribute access to a validated table and its sub-tables (what the pydantic
    model gives, without pydantic)."""

    __slots__ = ("_table",)

    def __init__(self, table: Mapping[str, Any]) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._table[name]
        except KeyError:
            raise AttributeError(name) from None
        return AttributeView(value) if isinstance(value, Mapping) else value

    def model_dump(self) -> dict[str, Any]:
        """The table as plain data (a deep copy), like the model's ``model_dump()``."""
        return copy.deepcopy(dict(self._table))

    def __repr__(self) -> str:
        return f"AttributeView({sorted(self._table)})"


def where(config_path: Path | None) -> str:
    """`` in <path>`` for error messages (empty without a path)."""
    return f" in {config_path}" if config_path is not None else ""


def missing_telegram_error(config_path: Path | None) -> ConfigError:
    """The error for a config without ``[transports.telegram]``."""
    return ConfigError(
        f"Missing [transports.telegram]{where(config_path)}; "
        "set bot_token and chat_id (or run `takopi --onboard`)."
    )


class ProjectTableLike(Protocol):
    """One ``[projects.<alias>]`` table as written (paths not yet resolved)."""

    @property
    def path(self) -> str: ...
    @property
    def worktrees_dir(self) -> str: ...
    @property
    def default_engine(self) -> str | None: ...
    @property
    def worktree_base(self) -> str | None: ...
    @property
    def chat_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ProjectTable:
    """A validated ``[projects.<alias>]`` table, read from a settings dump."""

    path: str
    worktrees_dir: str = ".worktrees"
    default_engine: str | None = None
    worktree_base: str | None = None
    chat_id: int | None = None


def _table(value: Any, what: str) -> dict[str, Any]:
    """A config table (a copy; ``{}`` if absent); ConfigError naming ``what`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"Invalid {what}; expected a table.")
    return dict(value)


class SettingsAccess:
    """Accessors shared by the pydantic settings and their plain view. Subclasses provide
    the fields below and the ``_…`` reads."""

    if TYPE_CHECKING:  # fields of the subclasses (not annotations here: pydantic reads them)
        watch_config: bool
        default_engine: str
        default_project: str | None
        transport: str

    def _top_level_extra(self) -> Mapping[str, Any]:
        """Top-level tables takopi does not own (``[codex]``, ``[supervisor]``…)."""
        raise NotImplementedError

    def _transport_extra(self) -> Mapping[str, Any]:
        """``[transports.<id>]`` tables other than telegram."""
        raise NotImplementedError

    def _telegram_dump(self) -> dict[str, Any] | None:
        """The validated ``[transports.telegram]`` as plain data (None if absent)."""
        raise NotImplementedError

    def _telegram_chat_id(self) -> int | None:
        raise NotImplementedError

    def _plugins_enabled(self) -> list[str]:
        raise NotImplementedError

    def _plugin_extra(self) -> Mapping[str, Any]:
        """``[plugins.<id>]`` tables."""
        raise NotImplementedError

    def _project_tables(self) -> Mapping[str, ProjectTableLike]:
        raise NotImplementedError

    def extra_table(self, name: str, *, what: str | None = None) -> dict[str, Any]:
        """The top-level ``[<name>]`` table (``{}`` if absent); ConfigError if not a table."""
        return _table(self._top_level_extra().get(name), f"`{name}` {what or 'config'}")

    def engine_config(self, engine_id: str, *, config_path: Path | None = None) -> dict[str, Any]:
        """The top-level ``[<engine_id>]`` table (``{}`` if absent); ConfigError if not a table."""
        return self.extra_table(engine_id, what=f"config{where(config_path)}")

    def transport_config(
        self, transport_id: str, *, config_path: Path | None = None
    ) -> dict[str, Any]:
        """Config for ``transport_id``: validated telegram settings, raw TOML dict otherwise."""
        if transport_id in VALIDATED_TRANSPORTS:
            telegram = self._telegram_dump()
            if telegram is None:
                raise missing_telegram_error(config_path)
            return telegram
        return _table(
            self._transport_extra().get(transport_id),
            f"`transports.{transport_id}`{where(config_path)}",
        )

    def transport_tables(self) -> dict[str, Any]:
        """Every ``[transports.<id>]`` table by id (telegram's validated)."""
        tables = dict(self._transport_extra())
        telegram = self._telegram_dump()
        if telegram is not None:
            tables["telegram"] = telegram
        return tables

    def plugins_allowlist(self) -> list[str] | None:
        """``plugins.enabled``, or None when empty (= every installed plugin)."""
        enabled = [name for name in self._plugins_enabled() if name]
        return enabled or None

    def plugin_configs(self) -> dict[str, dict[str, Any]]:
        """Every ``[plugins.<id>]`` table, by id."""
        return {k: dict(v) for k, v in self._plugin_extra().items()}

    def plugin_config(self, plugin_id: str, *, config_path: Path | None = None) -> dict[str, Any]:
        """``[plugins.<plugin_id>]`` (``{}`` if absent); ConfigError if not a table."""
        return _table(
            self._plugin_extra().get(plugin_id), f"`plugins.{plugin_id}`{where(config_path)}"
        )

    def plugin_python(self, plugin_id: str, *, config_path: Path | None = None) -> str | None:
        """``[plugins.<id>] python``: the interpreter to run that plugin's worker under."""
        value = self.plugin_config(plugin_id, config_path=config_path).get("python")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"Invalid `plugins.{plugin_id}.python`{where(config_path)}; "
                "expected a path to a Python interpreter."
            )
        python = os.path.expanduser(value.strip())
        if config_path is not None and os.sep in python and not os.path.isabs(python):
            python = str(Path(config_path).parent / python)
        return python

    def project_aliases(self) -> list[str]:
        """The ``[projects.<alias>]`` aliases as written."""
        return list(self._project_tables())

    def to_projects_config(
        self,
        *,
        config_path: Path,
        engine_ids: Iterable[str],
        reserved: Collection[str] = RESERVED_CHAT_COMMANDS,
    ) -> ProjectsConfig:
        """Resolve ``[projects.*]`` and ``default_project`` into a :class:`ProjectsConfig`."""
        config_path = Path(config_path)
        engines = {e.lower() for e in engine_ids}
        reserved_lower = {r.lower() for r in reserved}
        main_chat_id = self._telegram_chat_id()
        base_dir = config_path.expanduser().parent
        projects: dict[str, ProjectConfig] = {}
        chat_map: dict[int, str] = {}
        for alias, raw in self._project_tables().items():
            key = alias.strip().lower()
            if not key:
                raise ConfigError(f"Invalid project alias {alias!r}{where(config_path)}.")
            if key in engines:
                raise ConfigError(
                    f"Invalid project alias {alias!r}; aliases must not match engine ids."
                )
            if key in reserved_lower:
                raise ConfigError(
                    f"Invalid project alias {alias!r}; aliases must not match reserved commands."
                )
            if key in projects:
                raise ConfigError(
                    f"Duplicate project alias {alias!r} (aliases are case-insensitive)."
                )
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
        if self.default_project:
            default_project = self.default_project.strip().lower()
            if default_project not in projects:
                known = ", ".join(p.alias for p in projects.values()) or "none"
                raise ConfigError(
                    f"Invalid default_project {self.default_project!r}; "
                    f"no such project. Known projects: {known}."
                )
        return ProjectsConfig(projects=projects, default_project=default_project, chat_map=chat_map)


_OWN_FIELDS = frozenset(
    {"watch_config", "default_engine", "default_project", "transport", "transports"}
    | {"projects", "plugins"}
)


class SettingsView(SettingsAccess):
    """Validated settings as plain data: built from ``TakopiSettings.model_dump()`` (see
    :func:`takopi.settings.settings_dump`), which it trusts to be valid."""

    def __init__(self, dump: Mapping[str, Any]) -> None:
        self.watch_config = bool(dump.get("watch_config", False))
        self.default_engine = str(dump.get("default_engine") or "codex")
        self.default_project = dump.get("default_project")
        self.transport = str(dump.get("transport") or "telegram")
        transports = dict(dump.get("transports") or {})
        self._telegram: dict[str, Any] | None = transports.pop("telegram", None)
        self._transports = transports
        plugins = dict(dump.get("plugins") or {})
        self._enabled = [str(name) for name in plugins.pop("enabled", None) or []]
        self._plugins = plugins
        self._extra = {k: v for k, v in dump.items() if k not in _OWN_FIELDS}
        self._projects = {
            str(alias): ProjectTable(**table)
            for alias, table in (dump.get("projects") or {}).items()
        }

    def _top_level_extra(self) -> Mapping[str, Any]:
        return self._extra

    def _transport_extra(self) -> Mapping[str, Any]:
        return self._transports

    def _telegram_dump(self) -> dict[str, Any] | None:
        return None if self._telegram is None else dict(self._telegram)

    def _telegram_chat_id(self) -> int | None:
        return None if self._telegram is None else self._telegram.get("chat_id")

    def _plugins_enabled(self) -> list[str]:
        return self._enabled

    def _plugin_extra(self) -> Mapping[str, Any]:
        return self._plugins

    def _project_tables(self) -> Mapping[str, ProjectTableLike]:
        return self._projects


__all__ = [
    "FILES_MAX_DOWNLOAD_BYTES",
    "FILES_MAX_UPLOAD_BYTES",
    "VALIDATED_TRANSPORTS",
    "AttributeView",
    "ProjectTable",
    "ProjectTableLike",
    "SettingsAccess",
    "SettingsView",
    "ValidatedTable",
    "missing_telegram_error",
    "where",
]
