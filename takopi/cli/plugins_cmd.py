"""``takopi plugins [--load]``: installed plugins, their interpreter and load status.

The same group carries the managed-environment subcommands (``install``, ``list``,
``upgrade``, ``remove``; :mod:`takopi.cli.plugins_manage`); without one it lists plugins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from takopi.cli.common import command_config_path, config_path_option
from takopi.cli.plugins_manage import SUBCOMMANDS
from takopi.config import ConfigError, read_config
from takopi.ids import RESERVED_COMMAND_IDS, RESERVED_ENGINE_IDS
from takopi.plugins import (
    COMMAND_GROUP,
    ENGINE_GROUP,
    TRANSPORT_GROUP,
    PluginEntryPoint,
    get_load_errors,
    is_allowed,
    list_entrypoints,
    list_entrypoints_for_python,
)

SECTIONS: tuple[tuple[str, str, str, frozenset[str] | None], ...] = (
    ("engine backends", "engine", ENGINE_GROUP, RESERVED_ENGINE_IDS),
    ("transport backends", "transport", TRANSPORT_GROUP, None),
    ("command backends", "command", COMMAND_GROUP, RESERVED_COMMAND_IDS),
)

_FOREIGN_LOAD = r"""
import json, sys
from importlib import metadata
group, name, value = sys.argv[1:4]
try:
    obj = metadata.EntryPoint(name=name, value=value, group=group).load()
    oid = getattr(obj, "id", None)
    err = None if oid == name else f"plugin id mismatch: entry point {name!r} loaded an object with id {oid!r}"
except BaseException as exc:
    err = f"{type(exc).__name__}: {exc}"
sys.stdout.write(json.dumps({"error": err}))
"""


@dataclass(frozen=True, slots=True)
class PluginRow:
    """One listed plugin."""

    kind: str
    entry: PluginEntryPoint
    enabled: bool | None
    python: str
    load_error: str | None = None
    loaded: bool | None = None

    def render(self) -> str:
        text = f"  {self.entry.name} ({self.entry.distribution or 'unknown'})"
        if self.enabled is not None:
            text += " enabled" if self.enabled else " disabled"
        text += f" [python: {self.python}]"
        if self.loaded is not None:
            text += " loaded" if self.loaded else " failed"
        return text


def _load_in_process(kind: str, name: str, allowlist: list[str] | None) -> str | None:
    from takopi.commands import get_command
    from takopi.engines import get_backend
    from takopi.transports import get_transport

    try:
        if kind == "engine":
            get_backend(name, allowlist=allowlist)
        elif kind == "transport":
            get_transport(name, allowlist=allowlist)
        else:
            get_command(name, allowlist=allowlist, required=True)
    except ConfigError as exc:
        return str(exc)
    return None


def _load_foreign(python: str, ep: PluginEntryPoint) -> str | None:
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _FOREIGN_LOAD, ep.group, ep.name, ep.value],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return json.loads(proc.stdout).get("error")  # type: ignore[no-any-return]
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
        return f"cannot load with {python}: {exc}"


def collect_rows(
    raw: dict[str, Any], config_path: Path, *, load: bool
) -> tuple[dict[str, list[PluginRow]], list[str]]:
    """Rows per section and the error lines (listing + loading problems)."""
    from takopi.settings import validate_settings

    allowlist: list[str] | None = None
    foreign: dict[str, str] = {}
    try:
        settings = validate_settings(raw, config_path=config_path)
        allowlist = settings.plugins_allowlist()
        for plugin_id in settings.plugin_configs():
            python = settings.plugin_python(plugin_id, config_path=config_path)
            if python:
                foreign[plugin_id] = python
    except ConfigError:
        pass
    errors: list[str] = []
    rows: dict[str, list[PluginRow]] = {}
    for title, kind, group, reserved in SECTIONS:
        found: dict[str, PluginRow] = {}
        for ep in list_entrypoints(group, reserved_ids=reserved):
            enabled = is_allowed(ep.distribution, allowlist) if allowlist else None
            found[ep.name] = PluginRow(kind, ep, enabled, foreign.get(ep.name) or sys.executable)
        for python in sorted(set(foreign.values())):
            try:
                eps: Iterable[PluginEntryPoint] = list_entrypoints_for_python(
                    python, group, reserved_ids=reserved
                )
            except ConfigError as exc:
                errors.append(f"  {kind} ({python}): {exc}")
                continue
            for ep in eps:
                if foreign.get(ep.name) == python:
                    enabled = is_allowed(ep.distribution, allowlist) if allowlist else None
                    found[ep.name] = PluginRow(kind, ep, enabled, python)
        listed = []
        for name in sorted(found):
            row = found[name]
            if load and row.enabled is not False:
                if row.python == sys.executable and name not in foreign:
                    error = _load_in_process(kind, name, allowlist)
                else:
                    error = _load_foreign(row.python, row.entry)
                row = PluginRow(kind, row.entry, row.enabled, row.python, error, error is None)
                if error:
                    errors.append(f"  {kind} {name} ({row.entry.distribution}): {error}")
            listed.append(row)
        rows[title] = listed
    named = {line.split(": ", 1)[0] for line in errors}
    for err in get_load_errors():
        kind = next((k for _t, k, g, _r in SECTIONS if g == err.group), err.group)
        head = f"  {kind} {err.name} ({err.distribution})"
        if head not in named:
            errors.append(f"{head}: {err.error}")
            named.add(head)
    return rows, errors


@click.group(
    "plugins",
    invoke_without_command=True,
    help="List installed plugins (--load imports them to find errors), or manage plugin "
    "environments with the subcommands.",
)
@click.option("--load", is_flag=True, help="Import each allowed plugin to surface load errors.")
@config_path_option()
@click.pass_context
def plugins_cmd(ctx: click.Context, load: bool, config_path: Path | None) -> None:
    if ctx.invoked_subcommand is not None:
        return
    path = command_config_path(ctx, config_path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = read_config(path)
        except ConfigError as exc:
            click.echo(f"warning: {exc}", err=True)
    rows, errors = collect_rows(raw, path, load=load)
    for title, listed in rows.items():
        click.echo(f"{title}:")
        if not listed:
            click.echo("  (none)")
        for row in listed:
            click.echo(row.render())
    if errors:
        click.echo("errors:")
        for line in errors:
            click.echo(line)


for _subcommand in SUBCOMMANDS:
    plugins_cmd.add_command(_subcommand)

__all__ = ["PluginRow", "collect_rows", "plugins_cmd"]
