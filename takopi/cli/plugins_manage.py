"""``takopi plugins install|list|upgrade|remove``: managed plugin environments.

Thin click wrappers over :class:`takopi.plugin_envs.manager.PluginEnvManager`; every failure
is a :class:`~takopi.plugin_envs.errors.PluginEnvError` printed as ``error: ...`` (exit 1)
after the manager has rolled back whatever it had built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

import takopi
from takopi.cli.common import command_config_path, config_path_option, fail
from takopi.plugin_envs import config_edit
from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.installers import INSTALLER_CHOICES
from takopi.plugin_envs.manager import EnvOptions, PluginEnvManager
from takopi.plugin_envs.store import EnvStore, Manifest

_config_path_option = config_path_option(
    "Config file to use (default: ~/.takopi/takopi.toml); environments live next to it."
)


def _env_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--python",
        "python",
        default=None,
        metavar="VERSION|PATH",
        help="Interpreter for the environment: a version (3.13), a command or a path.",
    )(func)
    func = click.option(
        "--installer",
        type=click.Choice(INSTALLER_CHOICES),
        default="auto",
        show_default=True,
        help="Build environments with uv or pip (auto: uv when available).",
    )(func)
    return click.option(
        "--no-load-check",
        "no_load_check",
        is_flag=True,
        help="Do not import the plugin's entry points in the new environment before using it.",
    )(func)


def _path(ctx: click.Context, config_path: Path | None) -> Path:
    if config_path is None and ctx.parent is not None:
        config_path = ctx.parent.params.get("config_path")
    return command_config_path(ctx, config_path)


def _manager(ctx: click.Context, config_path: Path | None) -> PluginEnvManager:
    return PluginEnvManager(_path(ctx, config_path), click.echo)


def _run(action: Callable[[], object]) -> None:
    try:
        action()
    except PluginEnvError as exc:
        fail(str(exc))


@click.command("install")
@click.argument("requirements", nargs=-1, required=True, metavar="DIST[==VERSION]...")
@click.option(
    "--ignore-requires-python",
    is_flag=True,
    help="Install even when the plugin's Requires-Python excludes the chosen interpreter.",
)
@_env_options
@_config_path_option
@click.pass_context
def install_cmd(
    ctx: click.Context,
    requirements: tuple[str, ...],
    ignore_requires_python: bool,
    python: str | None,
    installer: str,
    no_load_check: bool,
    config_path: Path | None,
) -> None:
    """Install plugin distributions, each into its own environment (with this takopi), and
    point [plugins.<id>] python of every entry point at it."""
    options = EnvOptions(python, ignore_requires_python, installer, not no_load_check)
    manager = _manager(ctx, config_path)
    _run(lambda: manager.install(requirements, options))


@click.command("upgrade")
@click.argument("names", nargs=-1, metavar="[DIST[==VERSION]]...")
@click.option(
    "--ignore-requires-python/--respect-requires-python",
    "ignore_requires_python",
    default=None,
    help="Override the plugin's Requires-Python or not (default: as when installed).",
)
@_env_options
@_config_path_option
@click.pass_context
def upgrade_cmd(
    ctx: click.Context,
    names: tuple[str, ...],
    ignore_requires_python: bool | None,
    python: str | None,
    installer: str,
    no_load_check: bool,
    config_path: Path | None,
) -> None:
    """Rebuild managed environments (all when none named) with the newest plugin version,
    or the one named, and this takopi."""
    options = EnvOptions(python, ignore_requires_python, installer, not no_load_check)
    manager = _manager(ctx, config_path)
    _run(lambda: manager.upgrade(names, options))


@click.command("remove")
@click.argument("names", nargs=-1, required=True, metavar="DIST...")
@_config_path_option
@click.pass_context
def remove_cmd(ctx: click.Context, names: tuple[str, ...], config_path: Path | None) -> None:
    """Delete managed environments and the config entries takopi wrote for them."""
    manager = _manager(ctx, config_path)
    _run(lambda: manager.remove(names))


def _problems(manifest: Manifest, raw: dict[str, Any]) -> list[str]:
    problems = []
    for plugin_id, value in sorted(manifest.config_python.items()):
        current = config_edit.python_value(raw, plugin_id)
        if current is None:
            problems.append(f"[plugins.{plugin_id}] python is not set")
        elif os.path.abspath(os.path.expanduser(str(current))) != os.path.abspath(value):
            problems.append(f"[plugins.{plugin_id}] python points elsewhere ({current})")
    if manifest.takopi_version != takopi.__version__:
        problems.append(
            f"built with takopi {manifest.takopi_version}, this is {takopi.__version__}: "
            f"run `takopi plugins upgrade {manifest.distribution}`"
        )
    if not manifest.venv_python.exists():
        problems.append(f"{manifest.venv_python} is missing")
    return problems


@click.command("list")
@_config_path_option
@click.pass_context
def list_cmd(ctx: click.Context, config_path: Path | None) -> None:
    """Show managed environments: distribution, version, Python, entry points."""
    path = _path(ctx, config_path)
    store = EnvStore(path)
    manifests = store.installed()
    try:
        raw = config_edit.load(path)
    except PluginEnvError as exc:
        click.echo(f"warning: {exc}", err=True)
        raw = {}
    if not manifests:
        click.echo(f"no managed plugin environments in {store.root}")
    else:
        click.echo(f"managed plugin environments in {store.root}:")
    warnings: list[str] = []
    for manifest in manifests:
        ids = ", ".join(
            f"{e.group.removeprefix('takopi.').removesuffix('_backends')} {e.name}"
            for e in manifest.entry_points
        )
        ignored = " (Requires-Python ignored)" if manifest.ignore_requires_python else ""
        click.echo(
            f"  {manifest.distribution} {manifest.version}  "
            f"python {manifest.python_version}{ignored}  {ids}"
        )
        click.echo(f"    env: {manifest.env_dir}")
        click.echo(f"    takopi {manifest.takopi_version} ({manifest.takopi_source})")
        warnings += [f"  {manifest.distribution}: {p}" for p in _problems(manifest, raw)]
    warnings += [
        f"  {name}: no usable environment (reinstall with `takopi plugins install {name}`)"
        for name in store.broken()
    ]
    if warnings:
        click.echo("warnings:")
        for line in warnings:
            click.echo(line)


SUBCOMMANDS = (install_cmd, list_cmd, upgrade_cmd, remove_cmd)

__all__ = ["SUBCOMMANDS", "install_cmd", "list_cmd", "remove_cmd", "upgrade_cmd"]
