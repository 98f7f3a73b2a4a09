"""Small helpers shared by the ``takopi`` subcommands: the ``--config-path`` option, paths for
display, errors, TTY checks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from takopi.config import resolve_config_path
from takopi.logging import get_logger

log = get_logger(__name__)

CONFIG_PATH_HELP = "Config file to use (default: ~/.takopi/takopi.toml)."
_F = TypeVar("_F", bound=Callable[..., Any])


def config_path_option(help_text: str = CONFIG_PATH_HELP) -> Callable[[_F], _F]:
    """A subcommand's ``--config-path`` (a ``Path`` or None; resolve it with
    :func:`command_config_path`)."""
    return click.option(
        "--config-path",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=help_text,
    )


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` with the home directory shown as ``~`` (how the reference prints paths)."""
    text = str(path)
    home = str(Path.home())
    if text == home:
        return "~"
    if home and home != os.sep and text.startswith(home + os.sep):
        return "~" + text[len(home) :]
    return text


def command_config_path(ctx: click.Context, path: str | os.PathLike[str] | None) -> Path:
    """The config file a subcommand works on.

    Its own ``--config-path``, else the root ``takopi --config``, else ``~/.takopi/takopi.toml``.
    """
    if path is None:
        path = (ctx.find_root().obj or {}).get("config_path")
    return resolve_config_path(path)


def fail(message: str, code: int = 1, **log_fields: object) -> NoReturn:
    """Print ``error: <message>`` to stderr, log it, and exit with ``code``."""
    log.debug("cli.error", message=message, code=code, **log_fields)
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def should_run_interactive() -> bool:
    """The reference's interactivity gate: not ``TAKOPI_NO_INTERACTIVE`` and a TTY on both ends."""
    if os.environ.get("TAKOPI_NO_INTERACTIVE"):
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = [
    "CONFIG_PATH_HELP",
    "command_config_path",
    "config_path_option",
    "display_path",
    "fail",
    "should_run_interactive",
]
