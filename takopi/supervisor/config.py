"""The supervisor's view of ``takopi.toml``: settings, transport and engine ids, which
interpreter runs each plugin, and the command plugins of foreign interpreters."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.supervisor.options import SupervisorOptions
from takopi.supervisor.worker_env import ENGINE_CREDENTIALS, EnvPolicy, secret_values

if TYPE_CHECKING:
    from takopi.supervisor.config_check import PendingCheck

log = get_logger(__name__)

EarlyPlan = tuple[Path, str, list[str]]
"""Config path, transport id and engine ids read from the raw TOML."""


class SupervisorConfig:
    """Loads and holds the settings; answers plugin questions from them."""

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        # A SettingsView once loaded (Any: read everywhere only after config_loaded).
        self.settings: Any = None
        self.config_path = Path("takopi.toml")
        self.transport_id = ""
        self._foreign_commands: dict[str, set[str]] = {}
        self._pending: PendingCheck | None = None

    @property
    def loaded(self) -> bool:
        """Whether the full settings were loaded (not only an early plan)."""
        return self.settings is not None

    def start_check(self) -> None:
        """Start validating the config in a child process now (:meth:`load` collects it), so
        that the check overlaps the rest of the start-up."""
        from takopi.config import resolve_config_path
        from takopi.supervisor.config_check import PendingCheck
        from takopi.supervisor.early import take_config_check

        path = resolve_config_path(self.options.config_path)
        self._pending = take_config_check(path) or PendingCheck(path)

    def load(self) -> None:
        """Read and validate the config (``ConfigError`` on problems); blocks while a child
        process validates it (:mod:`takopi.supervisor.config_check`), the one
        :meth:`start_check` started if any."""
        if self._pending is None:
            self.start_check()
        pending, self._pending = self._pending, None
        assert pending is not None
        settings = pending.result()
        self.config_path = pending.config_path
        self.transport_id = self.options.transport_override or settings.transport
        if not self.transport_id:
            raise ConfigError("Invalid --transport; expected a non-empty string.")
        self.options.apply_table(settings.extra_table("supervisor"))
        self.settings = settings

    def early_plan(self) -> EarlyPlan | None:
        """Config path, transport id and engine ids read from the raw TOML, so workers can
        start while the full settings are validated. None when environment overrides,
        legacy keys, foreign interpreters or a broken file could change the answer."""
        from takopi.config import read_config, resolve_config_path
        from takopi.engines import list_backends

        if any(key.upper().startswith("TAKOPI__") for key in os.environ):
            return None
        path = resolve_config_path(self.options.config_path)
        try:
            raw = read_config(path) if path.exists() else {}
            if "bot_token" in raw or "chat_id" in raw:
                return None
            plugins = raw.get("plugins") or {}
            if not isinstance(plugins, dict) or any(
                isinstance(v, dict) and "python" in v for v in plugins.values()
            ):
                return None
            transport = self.options.transport_override or raw.get("transport") or "telegram"
            enabled = plugins.get("enabled") or []
            if not isinstance(transport, str) or not isinstance(enabled, list):
                return None
            allowlist = [str(e) for e in enabled if e] or None
            self.options.apply_table(raw.get("supervisor") or {})
            engines = set(list_backends(allowlist=allowlist))
        except Exception as exc:  # the full load reports it properly
            log.debug("supervisor.early_plan_skipped", error=str(exc))
            return None
        if self.options.engines is not None:
            engines &= set(self.options.engines)
        return path, transport.strip(), sorted(engines)

    def engine_ids(self) -> list[str]:
        """Engines to run: installed ones plus those under a ``[plugins.<id>] python``."""
        from takopi.engines import list_backends
        from takopi.plugins import ENGINE_GROUP, list_entrypoints_for_python

        allowlist = self.settings.plugins_allowlist()
        ids = set(list_backends(allowlist=allowlist))
        for plugin_id, table in self.settings.plugin_configs().items():
            if isinstance(table, dict) and table.get("python") and plugin_id not in ids:
                python = self.settings.plugin_python(plugin_id, config_path=self.config_path)
                try:
                    eps = list_entrypoints_for_python(python, ENGINE_GROUP, allowlist=allowlist)
                except Exception as exc:
                    log.warning("supervisor.plugin_python_failed", plugin=plugin_id, error=str(exc))
                    continue
                ids.update(ep.name for ep in eps if ep.name == plugin_id)
        if self.options.engines is not None:
            ids &= set(self.options.engines)
        return sorted(ids)

    def python_for(self, plugin_id: str) -> str | None:
        """The interpreter of a plugin's worker (None: the supervisor's own)."""
        if self.settings is None:
            return None  # early spawn: only planned when no plugin sets its own python
        try:
            python = self.settings.plugin_python(plugin_id, config_path=self.config_path)
        except ConfigError as exc:
            log.warning("supervisor.bad_plugin_python", plugin=plugin_id, error=str(exc))
            return None
        return str(python) if python else None

    def knows_command(self, command_id: str) -> bool:
        """Whether a command plugin ``command_id`` can be started."""
        from takopi.commands import list_command_ids

        known = set(list_command_ids(allowlist=self.settings.plugins_allowlist()))
        return command_id in known or self.python_for(command_id) is not None

    def command_ids(self) -> list[str]:
        """Command plugin ids: this interpreter's plus foreign interpreters' (cached)."""
        from takopi.commands import list_command_ids
        from takopi.plugins import COMMAND_GROUP, list_entrypoints_for_python

        allowlist = self.settings.plugins_allowlist()
        ids = set(list_command_ids(allowlist=allowlist))
        cache = self._foreign_commands
        for plugin_id, table in self.settings.plugin_configs().items():
            python = table.get("python") if isinstance(table, dict) else None
            if not python:
                continue
            python = self.python_for(plugin_id) or python
            if python not in cache:
                try:
                    eps = list_entrypoints_for_python(python, COMMAND_GROUP, allowlist=allowlist)
                except Exception as exc:  # not cached: asked again next time
                    log.warning("supervisor.plugin_python_failed", plugin=plugin_id, error=str(exc))
                    continue
                cache[python] = {ep.name for ep in eps}
            if plugin_id in cache[python]:
                ids.add(plugin_id)
        return sorted(ids)

    def env_policy(self, environ: Mapping[str, str]) -> EnvPolicy:
        """Who may see which variables of ``environ`` (transport secrets from the config)."""
        settings = self.settings
        if settings is None:
            return EnvPolicy(environ, engine_env=self.options.engine_env)
        tables: list[object] = []
        with contextlib.suppress(Exception):
            tables.append(settings.transport_tables())
        api_billing = []
        for engine_id in ENGINE_CREDENTIALS:
            with contextlib.suppress(ConfigError):
                if settings.engine_config(engine_id).get("use_api_billing") is True:
                    api_billing.append(engine_id)
        return EnvPolicy(
            environ,
            transport_secrets=secret_values(tables),
            engine_env=self.options.engine_env,
            api_billing=api_billing,
        )

    def replace_settings(self, settings: Any) -> Any:
        """Swap in reloaded settings; returns the previous ones."""
        old, self.settings = self.settings, settings
        self._foreign_commands.clear()
        return old


__all__ = ["EarlyPlan", "SupervisorConfig"]
