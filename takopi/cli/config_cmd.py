"""``takopi config path|list|get|set|unset`` (behavior.md §1.1).

Exit codes: 0 ok; 1 missing key (``get``/``unset``) or missing config (``list``); 2 invalid key,
a table where a leaf was expected, an unreadable config (``get``/``set``/``unset``) or a value
that makes the config invalid (``set``/``unset``, nothing is written then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from takopi.cli.common import command_config_path, config_path_option, display_path, fail
from takopi.config import (
    ConfigError,
    flatten_config,
    format_value,
    get_key,
    parse_value,
    read_config,
    set_key,
    split_key,
    unset_key,
    write_config,
)
from takopi.config_migrations import migrate_config
from takopi.logging import get_logger

log = get_logger(__name__)

EXIT_MISSING = 1
EXIT_INVALID = 2


def _check_key(key: str) -> None:
    try:
        split_key(key)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)


def _load_for_edit(path: Path) -> dict[str, Any]:
    """The config to edit (empty when missing), migrated like at startup."""
    if not path.exists():
        return {}
    try:
        data = read_config(path)
        migrate_config(data, config_path=path)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    return data


def _validate(data: dict[str, Any], path: Path) -> Any:
    from takopi.settings import validate_settings

    try:
        return validate_settings(data, config_path=path, use_env=False)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)


@click.group("config", help="Show or edit the config file.")
def config_group() -> None:
    """``takopi config`` subcommands."""


@config_group.command("path", help="Print the config file path.")
@config_path_option()
@click.pass_context
def config_path_cmd(ctx: click.Context, config_path: Path | None) -> None:
    click.echo(display_path(command_config_path(ctx, config_path)))


@config_group.command("list", help="Print every key as `dot.path = value`.")
@config_path_option()
@click.pass_context
def config_list(ctx: click.Context, config_path: Path | None) -> None:
    path = command_config_path(ctx, config_path)
    try:
        data = read_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_MISSING)
    for line in flatten_config(data):
        click.echo(line)


@config_group.command("get", help="Print the value at KEY (a TOML literal).")
@click.argument("key")
@config_path_option()
@click.pass_context
def config_get(ctx: click.Context, key: str, config_path: Path | None) -> None:
    _check_key(key)
    path = command_config_path(ctx, config_path)
    try:
        data = read_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    try:
        value = get_key(data, key)
    except KeyError:
        raise SystemExit(EXIT_MISSING) from None
    if isinstance(value, dict):
        fail(f"{key!r} is a table; pick a leaf node.", EXIT_INVALID)
    click.echo(format_value(value))


@config_group.command("set", help="Set KEY to VALUE (parsed as a TOML literal, else a string).")
@click.argument("key")
@click.argument("value")
@config_path_option()
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str, config_path: Path | None) -> None:
    from takopi.settings import normalized_value

    _check_key(key)
    path = command_config_path(ctx, config_path)
    data = _load_for_edit(path)
    parsed = parse_value(value)
    try:
        set_key(data, key, parsed)
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID)
    settings = _validate(data, path)
    try:
        normalized = normalized_value(settings, key)
    except KeyError:
        normalized = parsed
    if not isinstance(normalized, dict) and normalized is not None and normalized != parsed:
        set_key(data, key, normalized)
    else:
        normalized = parsed
    write_config(data, path)
    log.info("config.set", path=str(path), key=key)
    click.echo(f"updated {key} = {format_value(normalized)}")


@config_group.command("unset", help="Remove KEY (empty parent tables are removed too).")
@click.argument("key")
@config_path_option()
@click.pass_context
def config_unset(ctx: click.Context, key: str, config_path: Path | None) -> None:
    _check_key(key)
    path = command_config_path(ctx, config_path)
    if not path.exists():
        fail(f"Missing config file {display_path(path)}.", EXIT_INVALID)
    data = _load_for_edit(path)
    if not unset_key(data, key):
        raise SystemExit(EXIT_MISSING)
    _validate(data, path)
    write_config(data, path)
    log.info("config.unset", path=str(path), key=key)
    click.echo(f"removed {key}")


__all__ = ["EXIT_INVALID", "EXIT_MISSING", "config_group"]
