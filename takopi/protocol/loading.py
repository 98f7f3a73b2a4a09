"""Bring-up messages: the supervisor loads each worker's plugin, then (transports) checks its
setup and starts it. Every ``load`` answers a ``*Loaded`` message or :class:`LoadFailed`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from takopi.protocol.snapshot import ResumeCodecInfo, RuntimeSnapshot

EngineStatus = Literal["ok", "bad_config", "missing_cli"]


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """The plugin could not be loaded; the worker exits with ``exit_code`` right after."""

    error: str
    exit_code: int


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """supervisor → engine worker ``load``: build the runner from ``[<engine>]``."""

    config: dict[str, Any] = field(default_factory=dict)
    config_path: str | None = None


@dataclass(frozen=True, slots=True)
class EngineLoaded:
    """The runner is built. ``status`` other than ``ok`` says why it may not run (``issue``);
    ``resume`` is its resume regex when it has one."""

    engine: str
    status: EngineStatus = "ok"
    issue: str | None = None
    cli_cmd: str | None = None
    install_cmd: str | None = None
    cli_path: str | None = None
    resume: ResumeCodecInfo | None = None


@dataclass(frozen=True, slots=True)
class EngineProbe:
    """supervisor → engine probe process (its stdin): load-check these engines one after the
    other, as an engine worker's ``load`` would (``engines``: engine id → its table)."""

    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_path: str | None = None
    env: dict[str, str] | None = None
    """The environment to load them in (none of a transport's secrets); it travels on the
    probe's own pipe, so a forked probe's fork server never holds it."""


@dataclass(frozen=True, slots=True)
class EngineProbed:
    """engine probe → supervisor, one per engine: first with ``result`` None (it is about to
    load ``engine``, so a crash or a hang can be pinned on it), then with its ``load`` answer."""

    engine: str
    result: EngineLoaded | LoadFailed | None = None


@dataclass(frozen=True, slots=True)
class TransportLoad:
    """supervisor → transport worker ``load``: import the backend, compute its lock token."""

    transport_config: dict[str, Any] = field(default_factory=dict)
    config_path: str | None = None
    validated: bool = False
    """The table was validated by takopi's own config model (the backend may trust it)."""


@dataclass(frozen=True, slots=True)
class TransportLoaded:
    """The backend is imported; ``lock_token`` is what the supervisor's lockfile holds."""

    lock_token: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class EngineDescription:
    """The default engine as ``check_setup`` needs it (an ``EngineBackend`` is built from it)."""

    id: str
    cli_cmd: str | None = None
    install_cmd: str | None = None


@dataclass(frozen=True, slots=True)
class SetupCheck:
    """supervisor → transport worker ``check_setup``."""

    engine: EngineDescription
    transport_override: str | None = None


@dataclass(frozen=True, slots=True)
class SetupProblem:
    """One issue ``check_setup`` reported (``install …`` titles are warnings only)."""

    title: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetupReport:
    """``check_setup``'s answer."""

    issues: tuple[SetupProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class TransportStart:
    """supervisor → transport worker ``start``: run ``build_and_run`` on its own thread."""

    snapshot: RuntimeSnapshot
    final_notify: bool = True
    default_engine_override: str | None = None


@dataclass(frozen=True, slots=True)
class TransportStarted:
    """``start``'s answer; ``error`` when it was already started."""

    started: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CommandLoad:
    """supervisor → command worker ``load``: import the command plugin."""

    snapshot: RuntimeSnapshot


@dataclass(frozen=True, slots=True)
class CommandLoaded:
    """The command plugin is imported."""

    description: str = ""


__all__ = [
    "CommandLoad",
    "CommandLoaded",
    "EngineDescription",
    "EngineLoad",
    "EngineLoaded",
    "EngineStatus",
    "LoadFailed",
    "SetupCheck",
    "SetupProblem",
    "SetupReport",
    "TransportLoad",
    "TransportLoaded",
    "TransportStart",
    "TransportStarted",
]
