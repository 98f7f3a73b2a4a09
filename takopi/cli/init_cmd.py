"""``takopi init [ALIAS] [--default]``: register the current repository as a project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from takopi.cli.common import command_config_path, config_path_option, display_path, fail
from takopi.config import ConfigError, ensure_table, read_config, write_config
from takopi.config_migrations import migrate_config
from takopi.ids import RESERVED_CHAT_COMMANDS
from takopi.logging import get_logger

log = get_logger(__name__)


def project_root(cwd: Path) -> Path:
    """The main worktree root of the repository at ``cwd`` (a bare repo or no repo: ``cwd``)."""
    from takopi.utils.git import resolve_main_worktree_root

    root = resolve_main_worktree_root(cwd)
    return (root or cwd).resolve()


def default_alias(root: Path) -> str:
    """The root directory's name without a ``.git`` suffix."""
    return root.name.removesuffix(".git") or root.name


def load_config_for_edit(path: Path) -> dict[str, Any]:
    """The config (``{}`` when missing), migrated; the file is rewritten when a migration ran."""
    if not path.exists():
        return {}
    try:
        data = read_config(path)
        applied = migrate_config(data, config_path=path)
    except ConfigError as exc:
        fail(str(exc))
    if applied:
        write_config(data, path)
        log.info("config.migrated", path=str(path), migrations=applied)
    return data


@click.command("init", help="Register the current repository as a project.")
@click.argument("alias", required=False)
@click.option("--default", "make_default", is_flag=True, help="Also make it the default project.")
@config_path_option()
@click.pass_context
def init_cmd(
    ctx: click.Context, alias: str | None, make_default: bool, config_path: Path | None
) -> None:
    from takopi.engines import list_backends
    from takopi.settings import validate_settings
    from takopi.utils.git import resolve_default_base, resolve_main_worktree_root

    path = command_config_path(ctx, config_path)
    data = load_config_for_edit(path)
    cwd = Path.cwd()
    root = project_root(cwd)
    if alias is None:
        alias = click.prompt("project alias", default=default_alias(root))
    alias = alias.strip()
    # the reference's texts (the config loader words the same rules the same way)
    if not alias:
        fail("project alias cannot be empty")
    engines = {e.lower() for e in list_backends(allowlist=_allowlist(data))}
    if alias.lower() in engines:
        fail(f"Invalid project alias {alias!r}; aliases must not match engine ids.")
    if alias.lower() in RESERVED_CHAT_COMMANDS:
        fail(f"Invalid project alias {alias!r}; aliases must not match reserved commands.")
    try:
        projects = ensure_table(data, "projects", config_path=path)
    except ConfigError as exc:
        fail(str(exc))
    existing = [key for key in projects if key.lower() == alias.lower()]
    if existing:
        if not click.confirm(f"project {existing[0]!r} already exists, overwrite?", default=False):
            raise SystemExit(1)
        for key in existing:
            del projects[key]
    entry: dict[str, Any] = {"path": str(root), "worktrees_dir": ".worktrees"}
    if isinstance(data.get("default_engine"), str) and data["default_engine"]:
        entry["default_engine"] = data["default_engine"]
    if resolve_main_worktree_root(cwd) is not None:
        base = resolve_default_base(root)
        if base:
            entry["worktree_base"] = base
    projects[alias] = entry
    if make_default:
        data["default_project"] = alias
    try:
        settings = validate_settings(data, config_path=path, use_env=False)
        settings.to_projects_config(config_path=path, engine_ids=engines)
    except ConfigError as exc:
        fail(str(exc))
    write_config(data, path)
    log.info("init.saved", alias=alias, path=str(root))
    click.echo(f"saved project {alias!r} to {display_path(path)}")


def _allowlist(data: dict[str, Any]) -> list[str] | None:
    plugins = data.get("plugins")
    enabled = plugins.get("enabled") if isinstance(plugins, dict) else None
    if isinstance(enabled, list):
        return [n for n in enabled if isinstance(n, str) and n.strip()] or None
    return None


__all__ = ["default_alias", "init_cmd", "load_config_for_edit", "project_root"]
