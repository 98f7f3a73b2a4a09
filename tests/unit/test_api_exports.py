"""takopi.api exposes every reference name; internal module paths plugins import exist."""

from __future__ import annotations

import importlib

import pytest

from tests.support.processes import fresh_python

# behavior.md §1.10: the reference takopi.api export list (API version 1).
REFERENCE_API = """
Action ActionEvent BaseRunner CompletedEvent ConfigError CommandBackend CommandContext
CommandExecutor CommandResult EngineBackend EngineConfig EngineId ExecBridgeConfig EventFactory
IncomingMessage JsonlSubprocessRunner MessageRef DirectiveError Presenter ProgressState
ProgressTracker ActionState RenderedMessage ResumeToken RunMode RunRequest RunResult
ResolvedMessage ResolvedRunner RunContext Runner RunnerUnavailableError RunningTask RunningTasks
SendOptions SetupIssue SetupResult StartedEvent TAKOPI_PLUGIN_API_VERSION Transport
TransportBackend TransportRuntime handle_message HOME_CONFIG_PATH RESERVED_COMMAND_IDS read_config
write_config get_logger bind_run_context clear_context suppress_logs set_run_base_dir
reset_run_base_dir ThreadJob ThreadScheduler get_command list_command_ids list_backends
load_settings install_issue
""".split()

# plugin-surface.md §4.2 (non-Telegram): module -> names real plugins import from it.
INTERNAL_PATHS = {
    "takopi.backends": ["EngineBackend", "EngineConfig", "SetupIssue"],
    "takopi.backends_helpers": ["install_issue"],
    "takopi.commands": [
        "CommandContext",
        "CommandExecutor",
        "CommandResult",
        "RunMode",
        "RunRequest",
        "RunResult",
        "get_command",
        "list_command_ids",
    ],
    "takopi.config": [
        "ConfigError",
        "HOME_CONFIG_PATH",
        "dump_toml",
        "ensure_table",
        "read_config",
        "write_config",
    ],
    "takopi.config_watch": ["ConfigReload", "watch_config"],
    "takopi.context": ["RunContext"],
    "takopi.directives": ["DirectiveError", "parse_directives"],
    "takopi.engines": ["list_backends"],
    "takopi.events": ["EventFactory"],
    "takopi.ids": ["RESERVED_CHAT_COMMANDS", "RESERVED_COMMAND_IDS"],
    "takopi.logging": ["bind_run_context", "clear_context", "get_logger", "suppress_logs"],
    "takopi.markdown": ["MarkdownFormatter", "MarkdownParts", "assemble_markdown_parts"],
    "takopi.model": [
        "Action",
        "ActionEvent",
        "ActionKind",
        "CompletedEvent",
        "EngineId",
        "ResumeToken",
        "StartedEvent",
        "TakopiEvent",
    ],
    "takopi.plugins": ["COMMAND_GROUP", "list_ids"],
    "takopi.progress": ["ProgressState", "ProgressTracker"],
    "takopi.router": ["RunnerUnavailableError"],
    "takopi.runner": ["JsonlRunState", "JsonlSubprocessRunner", "ResumeTokenMixin", "Runner"],
    "takopi.runner_bridge": [
        "ExecBridgeConfig",
        "IncomingMessage",
        "RunningTasks",
        "handle_message",
    ],
    "takopi.runners.run_options": ["EngineRunOptions", "apply_run_options", "get_run_options"],
    "takopi.runners.tool_actions": ["tool_input_path", "tool_kind_and_title"],
    "takopi.scheduler": ["ThreadJob", "ThreadScheduler"],
    "takopi.settings": [
        "HOME_CONFIG_PATH",
        "TelegramFilesSettings",
        "TelegramTopicsSettings",
        "load_settings",
        "require_telegram_config",
    ],
    "takopi.transport": ["MessageRef", "RenderedMessage", "SendOptions"],
    "takopi.transport_runtime": ["TransportRuntime"],
    "takopi.transports": ["SetupResult", "TransportBackend"],
    "takopi.utils.git": ["git_stdout", "resolve_main_worktree_root"],
    "takopi.utils.paths": ["get_run_base_dir", "reset_run_base_dir", "set_run_base_dir"],
}


def test_api_version_is_one() -> None:
    api = importlib.import_module("takopi.api")
    assert api.TAKOPI_PLUGIN_API_VERSION == 1


@pytest.mark.parametrize("name", REFERENCE_API)
def test_reference_name_is_exported(name: str) -> None:
    api = importlib.import_module("takopi.api")
    assert name in api.__all__
    assert getattr(api, name) is not None


def test_api_names_are_the_internal_objects() -> None:
    """`from takopi.api import X` and the internal path give the same object (isinstance works)."""
    from takopi import api
    from takopi.model import ResumeToken
    from takopi.transport import MessageRef

    assert api.ResumeToken is ResumeToken
    assert api.MessageRef is MessageRef


@pytest.mark.parametrize(("module", "names"), sorted(INTERNAL_PATHS.items()))
def test_internal_module_paths_exist(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n)]
    assert missing == []


def test_rejected_names_stay_rejected() -> None:
    """Upstream has no `takopi.engines.get_backends`; plugins relying on it must fail loudly."""
    assert not hasattr(importlib.import_module("takopi.engines"), "get_backends")
    with pytest.raises(AttributeError):
        importlib.import_module("takopi.api").__getattr__("get_backends")


def test_importing_api_is_lazy() -> None:
    """A worker importing takopi.api for one runner must not pay for settings or Telegram."""
    code = (
        "import sys, takopi.api\n"
        "from takopi.api import EngineBackend, JsonlSubprocessRunner\n"
        "heavy = [m for m in ('pydantic', 'takopi.settings', 'takopi.telegram', 'httpx') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    assert "".join(fresh_python(code)).strip() == ""
