"""Running takopi: checks and onboarding in front of the supervisor (behavior.md §1.1).

``takopi`` / ``takopi <engine>`` → :func:`run_takopi`: validate flags, onboard if the Telegram
config is missing (on a TTY), pick the default engine, refuse a second instance on the same
config, then hand over to :func:`takopi.supervisor.run_supervisor`. Exit codes: the
supervisor's (0 clean stop, 1 error, 3 transport quarantined, 130 interrupted) or 1 for a
problem found here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from takopi.cli.common import display_path, fail, should_run_interactive
from takopi.config import ConfigError, read_config, resolve_config_path
from takopi.logging import get_logger

log = get_logger(__name__)

DEFAULT_ENGINE_ENV = "TAKOPI__DEFAULT_ENGINE"


def _raw_config(path: Path) -> dict[str, Any] | None:
    try:
        return read_config(path) if path.exists() else None
    except ConfigError:
        return None


def _load_settings(path: Path) -> tuple[Any, ConfigError | None]:
    """Validated settings (None when the file is missing or invalid) and the error if invalid."""
    from takopi.settings import load_settings

    if not path.exists():
        return None, None
    try:
        settings, _ = load_settings(path)
    except ConfigError as exc:
        return None, exc
    return settings, None


def _onboard_other(transport_id: str, *, force: bool) -> bool:
    """A third-party transport's own ``interactive_setup``."""
    import anyio

    from takopi.transports import get_transport

    backend = get_transport(transport_id)
    return bool(anyio.run(lambda: backend.interactive_setup(force=force)))


def _telegram_gate(path: Path, settings: Any, error: ConfigError | None) -> Any:
    """Make sure a usable ``[transports.telegram]`` exists, onboarding on a TTY if needed."""
    from takopi.cli.onboarding import run_onboarding
    from takopi.cli.prompts import SetupAborted, TerminalPrompter

    if settings is not None and settings.transports.telegram is not None:
        return settings
    missing = not path.exists()
    where = display_path(path)
    if not should_run_interactive():
        if error is not None:
            click.echo(f"error: invalid takopi config at {where}", err=True)
            fail(str(error))
        fail(f"{'missing' if missing else 'invalid'} takopi config at {where}")
    prompter = TerminalPrompter()
    if missing:
        saved = run_onboarding(prompter, config_path=path, force=False)
    else:
        if error is not None:
            click.echo(f"warning: {error}", err=True)
        try:
            go = prompter.confirm(
                f"config at {where} is missing/invalid for telegram, run onboarding now?",
                default=False,
            )
        except SetupAborted:
            go = False
        if not go:
            fail(f"invalid takopi config at {where}")
        saved = run_onboarding(prompter, config_path=path, force=True, confirm_update=False)
    if not saved:
        raise SystemExit(1)
    settings, error = _load_settings(path)
    if error is not None:
        fail(str(error))
    return settings


def _engine_ids(settings: Any) -> list[str]:
    from takopi.engines import list_backends

    allowlist = settings.plugins_allowlist() if settings is not None else None
    return list_backends(allowlist=allowlist)


def _choose_default_engine(settings: Any, override: str | None) -> str:
    """The default engine; sets ``TAKOPI__DEFAULT_ENGINE`` for the demo fallback."""
    from takopi.cli.engines_info import fallback_default_engine
    from takopi.runtime_loader import FALLBACK_DEFAULT_ENGINE

    if override:
        return override
    explicit = settings is not None and "default_engine" in settings.model_fields_set
    if explicit:
        return str(settings.default_engine)
    if os.environ.get(DEFAULT_ENGINE_ENV):
        return os.environ[DEFAULT_ENGINE_ENV]
    aliases = settings.projects.keys() if settings is not None else ()
    fallback = fallback_default_engine(_engine_ids(settings), project_aliases=aliases)
    if fallback is not None:
        # Acts like `default_engine = "demo"` in the config (projects still pick their own).
        os.environ[DEFAULT_ENGINE_ENV] = fallback
        log.info("cli.default_engine_fallback", engine=fallback)
        return fallback
    return FALLBACK_DEFAULT_ENGINE


def _check_engine_cli(engine: str, settings: Any, path: Path) -> None:
    """``error: install <cmd>`` when the default engine's CLI is not on PATH."""
    import shutil

    from takopi.engines import get_backend

    if settings is not None:
        try:
            if settings.plugin_python(engine, config_path=path):
                return  # lives in another interpreter: its worker reports problems
        except ConfigError as exc:
            fail(str(exc))
    allowlist = settings.plugins_allowlist() if settings is not None else None
    try:
        backend = get_backend(engine, allowlist=allowlist)
    except ConfigError as exc:
        fail(str(exc))
    cli = backend.cli_cmd or backend.id
    if shutil.which(cli) is None:
        click.echo(f"error: install {cli}", err=True)
        if backend.install_cmd:
            click.echo(f"$ {backend.install_cmd}", err=True)
        raise SystemExit(1)


def _refuse_second_instance(path: Path) -> None:
    """A live supervisor already serves this config (same runtime dir) → refuse."""
    from takopi.cli.ctl_client import ControlClient, NotRunning

    try:
        status = ControlClient(path, timeout=3.0).call("status")
    except NotRunning:
        return
    except Exception as exc:  # a broken socket must not block a fresh start
        log.debug("cli.instance_probe_failed", error=str(exc))
        return
    pid = status.get("pid")
    fail(f"already running (pid {pid} serves {display_path(path)}; see `takopictl status`)")


def run_takopi(
    *,
    config_path: str | os.PathLike[str] | None,
    transport: str | None,
    debug: bool,
    final_notify: bool,
    onboard: bool,
    default_engine_override: str | None,
) -> int:
    """Everything ``takopi`` does before and while the supervisor runs; the exit code."""
    if transport is not None and not transport.strip():
        fail("Invalid --transport; expected a non-empty string.")
    transport = transport.strip() if transport else None
    path = resolve_config_path(config_path)
    raw = _raw_config(path)
    raw_transport = raw.get("transport") if isinstance(raw, dict) else None
    transport_id = transport or (raw_transport if isinstance(raw_transport, str) else None)
    transport_id = transport_id or "telegram"
    if onboard:
        if not should_run_interactive():
            fail("--onboard requires a TTY")
        if transport_id == "telegram":
            from takopi.cli.onboarding import run_onboarding
            from takopi.cli.prompts import TerminalPrompter

            saved = run_onboarding(TerminalPrompter(), config_path=path, force=True)
        else:
            try:
                saved = _onboard_other(transport_id, force=True)
            except ConfigError as exc:
                fail(str(exc))
        if not saved:
            raise SystemExit(1)
    from takopi.supervisor.early import spawn_early

    spawn_early()  # the fork server imports while we validate the config and import the rest
    settings, error = _load_settings(path)
    if settings is not None and transport is None:
        transport_id = settings.transport
    if transport_id == "telegram":
        settings = _telegram_gate(path, settings, error)
    elif error is not None:
        fail(str(error))
    engine = _choose_default_engine(settings, default_engine_override)
    _check_engine_cli(engine, settings, path)
    _refuse_second_instance(path)

    from takopi.supervisor import SupervisorOptions, run_supervisor

    options = SupervisorOptions(
        config_path=path,
        transport_override=transport,
        default_engine_override=default_engine_override,
        final_notify=final_notify,
        debug=debug,
    )
    log.info("cli.start", config=str(path), transport=transport_id, default_engine=engine)
    return int(run_supervisor(options))


__all__ = ["run_takopi"]
