"""Plugin id rules and reserved words (core-config)."""

from __future__ import annotations

import pytest

import takopi.api as api
from takopi.ids import (
    ID_PATTERN,
    RESERVED_CHAT_COMMANDS,
    RESERVED_CLI_COMMANDS,
    RESERVED_COMMAND_IDS,
    RESERVED_ENGINE_IDS,
    is_valid_id,
)


def test_reserved_sets() -> None:
    assert ID_PATTERN == r"^[a-z0-9_]{1,32}$"
    assert {"config", "doctor", "init", "plugins"} == RESERVED_CLI_COMMANDS
    assert {
        "cancel",
        "file",
        "new",
        "agent",
        "model",
        "reasoning",
        "trigger",
        "topic",
        "ctx",
    } == RESERVED_CHAT_COMMANDS
    assert RESERVED_COMMAND_IDS == RESERVED_CLI_COMMANDS | RESERVED_CHAT_COMMANDS
    assert RESERVED_ENGINE_IDS == RESERVED_COMMAND_IDS
    assert "run" not in RESERVED_COMMAND_IDS
    assert api.RESERVED_COMMAND_IDS is RESERVED_COMMAND_IDS


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("codex", True),
        ("claude_platform_aws", True),
        ("a", True),
        ("x" * 32, True),
        ("x" * 33, False),
        ("", False),
        ("Codex", False),
        ("my-engine", False),
        ("my.engine", False),
        ("engine\n", False),
        (None, False),
        (3, False),
    ],
)
def test_is_valid_id(value: object, ok: bool) -> None:
    assert is_valid_id(value) is ok
