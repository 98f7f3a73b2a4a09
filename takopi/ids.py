"""Plugin id rules and reserved words."""

from __future__ import annotations

import re

ID_PATTERN = r"^[a-z0-9_]{1,32}$"
_ID_RE = re.compile(ID_PATTERN)

RESERVED_CLI_COMMANDS: frozenset[str] = frozenset({"config", "doctor", "init", "plugins"})
"""Words taken by ``takopi`` subcommands."""

RESERVED_CHAT_COMMANDS: frozenset[str] = frozenset(
    {"cancel", "file", "new", "agent", "model", "reasoning", "trigger", "topic", "ctx"}
)
"""Slash commands handled by takopi itself in chats."""

RESERVED_COMMAND_IDS: frozenset[str] = RESERVED_CLI_COMMANDS | RESERVED_CHAT_COMMANDS
"""Ids a command plugin may not use."""

RESERVED_ENGINE_IDS: frozenset[str] = RESERVED_CLI_COMMANDS | RESERVED_CHAT_COMMANDS
"""Ids an engine plugin may not use (engine ids become CLI subcommands and chat directives)."""


def is_valid_id(value: object) -> bool:
    """True if ``value`` is a string matching ``ID_PATTERN`` (``^[a-z0-9_]{1,32}$``)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


__all__ = [
    "ID_PATTERN",
    "RESERVED_CHAT_COMMANDS",
    "RESERVED_CLI_COMMANDS",
    "RESERVED_COMMAND_IDS",
    "RESERVED_ENGINE_IDS",
    "is_valid_id",
]
