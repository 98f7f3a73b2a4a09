"""takopi public plugin API, version 1.

Everything a plugin may rely on is importable from here. Names are resolved lazily (PEP 562) so
that a worker process importing one runner does not pay for settings validation, the bridge or
the Telegram stack it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

TAKOPI_PLUGIN_API_VERSION = 1

_EXPORTS: dict[str, str] = {
    # engines and runners
    "EngineBackend": "takopi.backends",
    "EngineConfig": "takopi.backends",
    "SetupIssue": "takopi.backends",
    "install_issue": "takopi.backends_helpers",
    "Runner": "takopi.runner",
    "BaseRunner": "takopi.runner",
    "JsonlSubprocessRunner": "takopi.runner",
    "EventFactory": "takopi.events",
    "list_backends": "takopi.engines",
    # transports
    "TransportBackend": "takopi.transports",
    "SetupResult": "takopi.transports",
    "Transport": "takopi.transport",
    "MessageRef": "takopi.transport",
    "RenderedMessage": "takopi.transport",
    "SendOptions": "takopi.transport",
    "Presenter": "takopi.presenter",
    "TransportRuntime": "takopi.transport_runtime",
    "ResolvedMessage": "takopi.transport_runtime",
    "ResolvedRunner": "takopi.transport_runtime",
    # commands
    "CommandBackend": "takopi.commands",
    "CommandContext": "takopi.commands",
    "CommandExecutor": "takopi.commands",
    "CommandResult": "takopi.commands",
    "RunMode": "takopi.commands",
    "RunRequest": "takopi.commands",
    "RunResult": "takopi.commands",
    "get_command": "takopi.commands",
    "list_command_ids": "takopi.commands",
    "RESERVED_COMMAND_IDS": "takopi.ids",
    # core types
    "EngineId": "takopi.model",
    "ResumeToken": "takopi.model",
    "StartedEvent": "takopi.model",
    "ActionEvent": "takopi.model",
    "CompletedEvent": "takopi.model",
    "Action": "takopi.model",
    "RunContext": "takopi.context",
    "ConfigError": "takopi.config",
    "DirectiveError": "takopi.directives",
    "RunnerUnavailableError": "takopi.router",
    # bridge helpers
    "ExecBridgeConfig": "takopi.runner_bridge",
    "IncomingMessage": "takopi.runner_bridge",
    "RunningTask": "takopi.runner_bridge",
    "RunningTasks": "takopi.runner_bridge",
    "handle_message": "takopi.runner_bridge",
    "ProgressState": "takopi.progress",
    "ProgressTracker": "takopi.progress",
    "ActionState": "takopi.progress",
    "ThreadJob": "takopi.scheduler",
    "ThreadScheduler": "takopi.scheduler",
    # config, logging, paths
    "HOME_CONFIG_PATH": "takopi.config",
    "read_config": "takopi.config",
    "write_config": "takopi.config",
    "load_settings": "takopi.settings",
    "get_logger": "takopi.logging",
    "bind_run_context": "takopi.logging",
    "clear_context": "takopi.logging",
    "suppress_logs": "takopi.logging",
    "set_run_base_dir": "takopi.utils.paths",
    "reset_run_base_dir": "takopi.utils.paths",
}

__all__ = ["TAKOPI_PLUGIN_API_VERSION", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'takopi.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return list(__all__)


if TYPE_CHECKING:  # pragma: no cover - static view of the lazy exports
    from takopi.backends import EngineBackend, EngineConfig, SetupIssue
    from takopi.backends_helpers import install_issue
    from takopi.commands import (
        CommandBackend,
        CommandContext,
        CommandExecutor,
        CommandResult,
        RunMode,
        RunRequest,
        RunResult,
        get_command,
        list_command_ids,
    )
    from takopi.config import HOME_CONFIG_PATH, ConfigError, read_config, write_config
    from takopi.context import RunContext
    from takopi.directives import DirectiveError
    from takopi.engines import list_backends
    from takopi.events import EventFactory
    from takopi.ids import RESERVED_COMMAND_IDS
    from takopi.logging import bind_run_context, clear_context, get_logger, suppress_logs
    from takopi.model import (
        Action,
        ActionEvent,
        CompletedEvent,
        EngineId,
        ResumeToken,
        StartedEvent,
    )
    from takopi.presenter import Presenter
    from takopi.progress import ActionState, ProgressState, ProgressTracker
    from takopi.router import RunnerUnavailableError
    from takopi.runner import BaseRunner, JsonlSubprocessRunner, Runner
    from takopi.runner_bridge import (
        ExecBridgeConfig,
        IncomingMessage,
        RunningTask,
        RunningTasks,
        handle_message,
    )
    from takopi.scheduler import ThreadJob, ThreadScheduler
    from takopi.settings import load_settings
    from takopi.transport import MessageRef, RenderedMessage, SendOptions, Transport
    from takopi.transport_runtime import ResolvedMessage, ResolvedRunner, TransportRuntime
    from takopi.transports import SetupResult, TransportBackend
    from takopi.utils.paths import reset_run_base_dir, set_run_base_dir
