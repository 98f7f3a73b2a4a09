"""Engine backend declaration: what an engine plugin's entry point resolves to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps this module import-light
    from takopi.runner import Runner

EngineConfig: TypeAlias = dict[str, Any]
"""The engine's own config table (``[codex]``, ``[claude]``, …) as a plain dict."""


@dataclass(frozen=True, slots=True)
class SetupIssue:
    """One problem found while checking setup: a short title plus detail lines."""

    title: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineBackend:
    """An engine plugin: its id, a runner factory and how to find/install its CLI.

    ``build_runner(config, config_path)`` should raise ``ConfigError`` for an invalid config.
    ``cli_cmd`` (default: the id) is looked up on ``PATH``; ``install_cmd`` is shown to users
    when it is missing.
    """

    id: str
    build_runner: Callable[[EngineConfig, Path], Runner]
    cli_cmd: str | None = None
    install_cmd: str | None = None


__all__ = ["EngineBackend", "EngineConfig", "SetupIssue"]
