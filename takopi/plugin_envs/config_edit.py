"""The config entries that managed plugin environments own.

For every entry point of a managed distribution takopi writes ``[plugins.<id>] python``, and
when ``plugins.enabled`` is a non-empty allowlist it adds the distribution to it (an installed
but filtered-out plugin would be a trap). Removal takes back exactly what was written, and
leaves values the user has changed since. Reading and writing go through :mod:`takopi.config`
(``tomllib`` in, ``tomli-w`` out, atomic replace).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.config import ConfigError, read_config, unset_key, write_config
from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugins import canonicalize_name


@dataclass(slots=True)
class ConfigChange:
    """Edits to apply in one atomic write."""

    set_python: dict[str, str] = field(default_factory=dict)
    unset_python: dict[str, str] = field(default_factory=dict)
    """Plugin id -> the value takopi wrote; removed only while it still has that value."""
    enable: set[str] = field(default_factory=set)
    disable: set[str] = field(default_factory=set)


def load(config_path: Path) -> dict[str, Any]:
    """The raw config (``{}`` when the file does not exist yet)."""
    if not config_path.exists():
        return {}
    try:
        return read_config(config_path)
    except ConfigError as exc:
        raise PluginEnvError(f"{exc} Fix it before managing plugins; nothing was changed.") from exc


def _plugins_table(raw: dict[str, Any], config_path: Path) -> dict[str, Any]:
    table = raw.setdefault("plugins", {})
    if not isinstance(table, dict):
        raise PluginEnvError(f"`plugins` in {config_path} is not a table; nothing was changed.")
    return table


def _same_path(a: object, b: str) -> bool:
    if not isinstance(a, str):
        return False
    return os.path.abspath(os.path.expanduser(a)) == os.path.abspath(os.path.expanduser(b))


def python_value(raw: dict[str, Any], plugin_id: str) -> object:
    """The current ``[plugins.<id>] python`` (None when absent)."""
    plugins = raw.get("plugins")
    table = plugins.get(plugin_id) if isinstance(plugins, dict) else None
    return table.get("python") if isinstance(table, dict) else None


def enabled_list(raw: dict[str, Any]) -> list[str]:
    plugins = raw.get("plugins")
    enabled = plugins.get("enabled") if isinstance(plugins, dict) else None
    return [str(e) for e in enabled] if isinstance(enabled, list) else []


def apply(raw: dict[str, Any], change: ConfigChange, config_path: Path) -> tuple[dict, list[str]]:
    """``raw`` with ``change`` applied (a copy) and notes about what was replaced or kept."""
    new = copy.deepcopy(raw)
    notes: list[str] = []
    for plugin_id, expected in sorted(change.unset_python.items()):
        if plugin_id in change.set_python:
            continue  # replaced in place below (keeps the table where it was)
        current = python_value(new, plugin_id)
        if current is None:
            continue
        if _same_path(current, expected):
            unset_key(new, f"plugins.{plugin_id}.python")
        else:
            notes.append(f"kept [plugins.{plugin_id}] python = {current!r} (changed by hand)")
    if change.disable:
        drop = {canonicalize_name(d) for d in change.disable}
        plugins = new.get("plugins")
        if isinstance(plugins, dict) and isinstance(plugins.get("enabled"), list):
            kept = [e for e in plugins["enabled"] if canonicalize_name(str(e)) not in drop]
            plugins["enabled"] = kept
    for plugin_id, value in sorted(change.set_python.items()):
        plugins = _plugins_table(new, config_path)
        table = plugins.setdefault(plugin_id, {})
        if not isinstance(table, dict):
            raise PluginEnvError(
                f"`plugins.{plugin_id}` in {config_path} is not a table; nothing was changed."
            )
        previous = table.get("python")
        if previous is not None and not _same_path(previous, value):
            notes.append(f"replaced [plugins.{plugin_id}] python = {previous!r}")
        table["python"] = value
    if change.enable:
        plugins = _plugins_table(new, config_path)
        enabled = plugins.get("enabled")
        if isinstance(enabled, list) and enabled:
            have = {canonicalize_name(str(e)) for e in enabled}
            for dist in sorted(change.enable):
                if canonicalize_name(dist) not in have:
                    enabled.append(dist)
                    notes.append(f"added {dist} to plugins.enabled")
    if isinstance(new.get("plugins"), dict) and not new["plugins"]:
        del new["plugins"]
    return new, notes


def save(config_path: Path, raw: dict[str, Any]) -> None:
    """Write ``raw`` atomically (``takopi.config.write_config``)."""
    try:
        write_config(raw, config_path)
    except (ConfigError, OSError) as exc:
        raise PluginEnvError(f"cannot write {config_path}: {exc}") from exc


__all__ = ["ConfigChange", "apply", "enabled_list", "load", "python_value", "save"]
