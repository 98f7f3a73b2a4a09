"""Slash-command parsing and the bot command menu (``setMyCommands``)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ID_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_BOT_COMMANDS = 100


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """``/<name>[@bot] args…`` — ``name`` lower-cased, ``args_text`` = rest of the text."""

    name: str
    args_text: str
    bot_username: str | None = None


def parse_command(text: str) -> ParsedCommand | None:
    """The command on the first line of ``text`` (first token ``/<cmd>[@bot]``), or None."""
    stripped = text.lstrip()
    if not stripped.startswith("/"):
        return None
    first_line, _, rest = stripped.partition("\n")
    token, _, line_rest = first_line.partition(" ")
    name = token[1:]
    bot = None
    if "@" in name:
        name, _, bot = name.partition("@")
    name = name.lower()
    if not name:
        return None
    args = line_rest.strip()
    if rest.strip():
        args = f"{args}\n{rest}".strip() if args else rest.strip()
    return ParsedCommand(name=name, args_text=args, bot_username=bot or None)


def split_command_args(args_text: str) -> tuple[str, ...]:
    """``shlex.split`` with a whitespace fallback for unbalanced quotes."""
    try:
        return tuple(shlex.split(args_text))
    except ValueError:
        return tuple(args_text.split())


def build_command_menu(
    *,
    engines: Iterable[str],
    projects: Iterable[str],
    plugin_commands: Sequence[tuple[str, str | None]],
    builtins: Sequence[tuple[str, str]],
) -> list[dict[str, str]]:
    """Menu order: engines, project aliases (valid ids only), plugin commands, builtins —
    capped at 100 entries; when truncated the last slot is ``cancel``."""
    seen: set[str] = set()
    menu: list[dict[str, str]] = []

    def add(command: str, description: str) -> None:
        if command in seen or not ID_RE.match(command):
            return
        seen.add(command)
        menu.append({"command": command, "description": description})

    for engine in engines:
        add(engine, f"use engine: {engine}")
    for alias in projects:
        add(alias, f"work on: {alias}")
    for command_id, description in plugin_commands:
        add(command_id, description or f"command: {command_id}")
    for command_id, description in builtins:
        add(command_id, description)
    if len(menu) > MAX_BOT_COMMANDS:
        menu = menu[: MAX_BOT_COMMANDS - 1]
        menu.append({"command": "cancel", "description": "cancel run"})
    return menu


__all__ = [
    "MAX_BOT_COMMANDS",
    "ParsedCommand",
    "build_command_menu",
    "parse_command",
    "split_command_args",
]
