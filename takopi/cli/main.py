"""``takopi``: the click app (behavior.md §1.1).

``takopi`` runs the auto-router; ``takopi <engine>`` does the same with that engine as the
default for new threads (one subcommand per installed engine, filtered by ``plugins.enabled``);
the other subcommands configure things. ``--config`` (an extension) picks another config file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from takopi.logging import get_logger

APP_HELP = "Telegram bridge for coding agents. Docs: https://takopi.dev/"

EXIT_CODES_HELP = """\b
Exit codes (running takopi):
  0    stopped cleanly (SIGTERM, Ctrl+C, takopictl stop, end of console input)
  1    error: missing/invalid config, engine CLI not installed, already running
  2    usage error (bad option or argument)
  3    the configured transport was quarantined (systemd restarts the service)
  130  interrupted during startup (Ctrl+C before the supervisor was running)
"""


def _version() -> str:
    from takopi import __version__

    return __version__


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(_version())
    ctx.exit(0)


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The flags shared by ``takopi`` and ``takopi <engine>``."""
    for option in reversed(
        [
            click.option(
                "--final-notify/--no-final-notify",
                default=True,
                help="Send the final answer as a new message (default) or edit in place.",
            ),
            click.option(
                "--onboard/--no-onboard",
                default=False,
                help="Run the setup wizard first (needs a TTY).",
            ),
            click.option("--transport", default=None, help="Transport to use (overrides config)."),
            click.option(
                "--debug/--no-debug", default=False, help="Debug logging (also to ./debug.log)."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _invoke_run(ctx: click.Context, engine: str | None, **flags: Any) -> None:
    from takopi.cli.run import run_takopi

    obj = ctx.find_root().obj or {}
    code = run_takopi(
        config_path=obj.get("config_path"),
        transport=flags["transport"],
        debug=flags["debug"],
        final_notify=flags["final_notify"],
        onboard=flags["onboard"],
        default_engine_override=engine,
    )
    ctx.exit(code)


class TakopiGroup(click.Group):
    """Lists the built-in subcommands first, then the engines."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        builtins = [n for n in self.commands if not getattr(self.commands[n], "is_engine", False)]
        engines = [n for n in self.commands if getattr(self.commands[n], "is_engine", False)]
        return sorted(builtins) + sorted(engines)


def make_engine_command(engine: str) -> click.Command:
    """``takopi <engine>``: the run flags, with ``engine`` as the default for new threads."""

    @run_options
    @click.pass_context
    def engine_cmd(ctx: click.Context, **flags: Any) -> None:
        _invoke_run(ctx, engine, **flags)

    command = click.Command(
        engine,
        callback=engine_cmd,
        params=list(getattr(engine_cmd, "__click_params__", [])),
        help=f"Run with the {engine} engine.",
    )
    command.is_engine = True  # type: ignore[attr-defined]
    return command


TOOL_COMMANDS = frozenset(
    {"init", "chat-id", "doctor", "plugins", "config", "service", "onboarding-paths"}
)
_VALUE_OPTIONS = frozenset({"--config", "--transport"})


def is_tool_invocation(argv: Sequence[str]) -> bool:
    """True for configuration subcommands, ``--help`` and ``--version`` (not a takopi run)."""
    if "--help" in argv or "--version" in argv:
        return True
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg in TOOL_COMMANDS
    return False


def setup_cli_logging(argv: Sequence[str]) -> None:
    """Configure logging before any takopi module binds its logger.

    Configuration subcommands print their results on stdout, so their logs go to stderr at
    warning level; a takopi run logs like the reference (stdout, info, ``--debug``).
    ``takopi.logging`` loggers bind the configuration current when they are created, hence
    "before": this runs ahead of every other takopi import.
    """
    from takopi.logging import setup_logging

    debug = "--debug" in argv
    if is_tool_invocation(argv):
        level = "debug" if debug else os.environ.get("TAKOPI_LOG_LEVEL", "warning")
        setup_logging(level=level, stream=sys.stderr)
    else:
        if debug:
            os.environ.setdefault("TAKOPI_LOG_FILE", "debug.log")
        elif _transport_from_argv(argv) == "console":
            # The console transport chats on this terminal: info-level logs would bury the
            # conversation. Supervisor and workers inherit this through the environment.
            os.environ.setdefault("TAKOPI_LOG_LEVEL", "warning")
        setup_logging(debug=debug)


def _transport_from_argv(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--transport" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--transport="):
            return arg.split("=", 1)[1]
    return None


def _config_from_argv(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--":
            break
    return None


def discover_engine_ids(config_path: str | os.PathLike[str] | None) -> list[str]:
    """Engine ids for subcommands: installed backends allowed by ``plugins.enabled``.

    Engines living in another interpreter (``[plugins.<id>] python``) are included. Nothing is
    imported; a broken config just means "no allowlist".
    """
    from takopi.config import ConfigError, read_config, resolve_config_path
    from takopi.engines import list_backends

    path = resolve_config_path(config_path)
    allowlist: list[str] | None = None
    foreign: dict[str, str] = {}
    try:
        raw = read_config(path) if path.exists() else {}
        plugins_value = raw.get("plugins")
        plugins: dict[str, Any] = plugins_value if isinstance(plugins_value, dict) else {}
        enabled = plugins.get("enabled")
        if isinstance(enabled, list):
            allowlist = [n for n in enabled if isinstance(n, str) and n.strip()] or None
        for key, table in plugins.items():
            if isinstance(table, dict) and isinstance(table.get("python"), str):
                foreign[key] = os.path.expanduser(table["python"])
    except ConfigError:
        pass
    ids = set(list_backends(allowlist=allowlist))
    if foreign:
        from takopi.ids import RESERVED_ENGINE_IDS
        from takopi.plugins import ENGINE_GROUP, list_entrypoints_for_python

        for python in set(foreign.values()):
            try:
                eps = list_entrypoints_for_python(
                    python, ENGINE_GROUP, allowlist=allowlist, reserved_ids=RESERVED_ENGINE_IDS
                )
            except ConfigError:
                continue
            ids.update(ep.name for ep in eps if foreign.get(ep.name) == python)
    return sorted(ids)


@click.command("onboarding-paths", help="Debug: list every path through the setup wizard.")
def onboarding_paths_cmd() -> None:
    from takopi.cli.ctl_render import table
    from takopi.cli.onboarding import onboarding_paths

    rows = onboarding_paths()
    click.echo(f"onboarding paths ({len(rows)})")
    for line in table(["WORKFLOW", "ENGINES", "SAVE ANYWAY", "SAVE", "OUTCOME"], rows):
        click.echo(line)


def create_app(engine_ids: Sequence[str] = ()) -> click.Group:
    """The ``takopi`` click group with one subcommand per engine id."""
    from takopi.cli.chat_id_cmd import chat_id_cmd
    from takopi.cli.config_cmd import config_group
    from takopi.cli.doctor_cmd import doctor_cmd
    from takopi.cli.init_cmd import init_cmd
    from takopi.cli.plugins_cmd import plugins_cmd
    from takopi.cli.service import service_group

    @click.group(
        cls=TakopiGroup,
        invoke_without_command=True,
        help=APP_HELP,
        epilog=EXIT_CODES_HELP,
        context_settings={"help_option_names": ["--help"]},
    )
    @click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Show the version and exit.",
    )
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default: ~/.takopi/takopi.toml).",
    )
    @run_options
    @click.pass_context
    def app(ctx: click.Context, config_path: Path | None, **flags: Any) -> None:
        ctx.obj = {"config_path": config_path, "transport": flags.get("transport")}
        if ctx.invoked_subcommand is None:
            _invoke_run(ctx, None, **flags)

    for command in (
        init_cmd,
        chat_id_cmd,
        doctor_cmd,
        plugins_cmd,
        config_group,
        service_group,
        onboarding_paths_cmd,
    ):
        app.add_command(command)
    for engine in engine_ids:
        if engine in app.commands:
            get_logger(__name__).warning("cli.engine_name_clash", engine=engine)
            continue
        app.add_command(make_engine_command(engine))
    return app


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not is_tool_invocation(args):
        from takopi.supervisor.early import start_config_check, start_early

        start_config_check(_config_from_argv(args))  # overlaps our imports
        start_early()  # before the config is read: the fork server may be forked from us
    setup_cli_logging(args)
    try:
        engines = discover_engine_ids(_config_from_argv(args))
    except Exception as exc:  # discovery must never make the CLI unusable
        get_logger(__name__).warning("cli.engine_discovery_failed", error=str(exc))
        engines = []
    app = create_app(engines)
    try:
        app.main(args=args, prog_name="takopi", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


__all__ = [
    "create_app",
    "discover_engine_ids",
    "is_tool_invocation",
    "main",
    "make_engine_command",
    "setup_cli_logging",
]
