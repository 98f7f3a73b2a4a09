"""Slash-command plugins: the protocol, the context a handler gets, and plugin lookup.

A command plugin is an object with ``id``, ``description`` and ``async handle(ctx)``,
published under the ``takopi.command_backends`` entry-point group. Inside a transport worker
the command runs in its own worker process: the worker host installs a resolver with
:func:`set_command_resolver` so that :func:`get_command` returns a proxy backend instead of
importing the plugin in-process, and a lister with :func:`set_command_lister` so that
:func:`list_command_ids` also names commands installed only in other interpreters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.ids import RESERVED_COMMAND_IDS
from takopi.logging import get_logger
from takopi.model import EngineId
from takopi.transport import MessageRef, RenderedMessage

_log = get_logger(__name__)

RunMode: TypeAlias = Literal["emit", "capture"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A run a command asks for: always a new thread; engine/context default from the chat."""

    prompt: str
    engine: EngineId | None = None
    context: RunContext | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run produced: the engine used and its final rendered message (if any)."""

    engine: EngineId
    message: RenderedMessage | None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's reply: sent to the chat, replying to the command message by default."""

    text: str
    notify: bool = True
    reply_to: MessageRef | None = None


@runtime_checkable
class CommandExecutor(Protocol):
    """Lets a command talk to its chat and reuse takopi's engine pipeline.

    Transports implement it (often as ``@dataclass(slots=True)`` subclasses of this class).
    """

    async def send(
        self,
        message: RenderedMessage | str,
        *,
        reply_to: MessageRef | None = None,
        notify: bool = True,
    ) -> MessageRef | None:
        """Send ``message`` to the command's chat/thread (plain strings are not rendered)."""
        ...

    async def run_one(self, request: RunRequest, *, mode: RunMode = "emit") -> RunResult:
        """Run one request in a new thread; ``capture`` returns the final message unsent."""
        ...

    async def run_many(
        self,
        requests: Sequence[RunRequest],
        *,
        mode: RunMode = "emit",
        parallel: bool = False,
    ) -> list[RunResult]:
        """Run several requests, one after another or in parallel (results in order)."""
        ...


@dataclass(slots=True, kw_only=True)
class CommandContext:
    """Everything a command handler gets about the message that invoked it."""

    command: str
    text: str
    args_text: str
    args: tuple[str, ...]
    message: MessageRef
    reply_to: MessageRef | None = None
    reply_text: str | None = None
    config_path: Path | None = None
    plugin_config: dict[str, Any] = field(default_factory=dict)
    runtime: Any = None
    executor: CommandExecutor


@runtime_checkable
class CommandBackend(Protocol):
    """A slash command plugin."""

    id: str
    description: str

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        """Handle one invocation; a returned result is sent as the reply."""
        ...


CommandResolver: TypeAlias = Callable[..., "CommandBackend | None"]
CommandLister: TypeAlias = Callable[..., list[str]]

_resolver: CommandResolver | None = None
_lister: CommandLister | None = None


def set_command_resolver(resolver: CommandResolver | None) -> CommandResolver | None:
    """Route :func:`get_command` through ``resolver(command_id, allowlist=, required=)``.

    Used by the transport worker to hand out proxy backends that run commands in their own
    worker process. ``None`` restores in-process loading. Returns the previous resolver.
    """
    global _resolver
    previous = _resolver
    _resolver = resolver
    return previous


def set_command_lister(lister: CommandLister | None) -> CommandLister | None:
    """Route :func:`list_command_ids` through ``lister(allowlist=...)``.

    Installed next to the resolver of :func:`set_command_resolver` by the transport worker,
    so a transport's command menu includes commands the supervisor can start in another
    interpreter. ``None`` restores the entry-point listing. Returns the previous lister.
    """
    global _lister
    previous = _lister
    _lister = lister
    return previous


def _check_backend(obj: Any) -> str | None:
    if not callable(getattr(obj, "handle", None)):
        return "command backend has no handle(ctx) method"
    if not isinstance(getattr(obj, "id", None), str):
        return "command backend has no string id"
    return None


def get_command(
    command_id: str,
    *,
    allowlist: Iterable[str] | None = None,
    required: bool = True,
) -> CommandBackend | None:
    """The command plugin ``command_id``.

    A missing or broken plugin raises :class:`ConfigError` when ``required``; otherwise it is
    logged and ``None`` is returned.
    """
    if _resolver is not None:
        return _resolver(command_id, allowlist=allowlist, required=required)
    from takopi import plugins

    try:
        backend = plugins.load_entrypoint(
            plugins.COMMAND_GROUP,
            command_id,
            allowlist=allowlist,
            reserved_ids=RESERVED_COMMAND_IDS,
            validator=_check_backend,
        )
    except plugins.PluginNotFoundError as exc:
        if required:
            available = ", ".join(exc.available) or "none"
            raise ConfigError(f"Unknown command {command_id!r}. Available: {available}.") from None
        return None
    except plugins.PluginLoadFailed as exc:
        _log.warning("commands.load_failed", command=command_id, error=str(exc))
        if required:
            raise ConfigError(
                f"Failed to load command {command_id!r}: {exc.load_error.error}"
            ) from None
        return None
    return backend  # type: ignore[no-any-return]


def list_command_ids(*, allowlist: Iterable[str] | None = None) -> list[str]:
    """Ids of the installed (and allowed) command plugins, sorted; nothing is imported."""
    if _lister is not None:
        return sorted(_lister(allowlist=allowlist))
    from takopi import plugins

    return plugins.list_ids(
        plugins.COMMAND_GROUP, allowlist=allowlist, reserved_ids=RESERVED_COMMAND_IDS
    )


__all__ = [
    "CommandBackend",
    "CommandContext",
    "CommandExecutor",
    "CommandLister",
    "CommandResolver",
    "CommandResult",
    "RunMode",
    "RunRequest",
    "RunResult",
    "get_command",
    "list_command_ids",
    "set_command_lister",
    "set_command_resolver",
]
