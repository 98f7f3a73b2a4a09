"""``takopictl``: inspect and steer a running takopi supervisor.

It talks to the supervisor that serves the same config as ``takopi`` (``--config``, default
``~/.takopi/takopi.toml``) over the owner-only control socket in its runtime directory.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import psutil

from takopi.cli.ctl_client import (
    EXIT_FAILED,
    EXIT_NO_ANSWER,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    ControlClient,
    ControlError,
    RequestFailed,
)
from takopi.cli.ctl_render import runs_table, status_lines, table
from takopi.cli.ctl_status import build_status, normalize_run

RESTART_ANSWER_MARGIN = 120.0
"""Seconds on top of --wait-timeout for the supervisor to restart and answer."""

EXIT_CODES_HELP = f"""\b
Exit codes:
  {EXIT_OK}  success
  {EXIT_FAILED}  the request failed: unknown worker or run, reload rejected, or a wait timed out
  {EXIT_USAGE}  usage error (bad option or argument)
  {EXIT_NOT_RUNNING}  takopi is not running for this config (no or stale control socket)
  {EXIT_NO_ANSWER}  no usable answer from the supervisor (timeout, broken socket, foreign owner)
"""

T = TypeVar("T")


def _client(ctx: click.Context) -> ControlClient:
    obj = ctx.find_root().obj or {}
    return ControlClient(obj.get("config_path"), timeout=float(obj.get("timeout", 10.0)))


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; control errors become ``error: ...`` and their exit code."""
    try:
        return fn()
    except ControlError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


@click.group(
    help="Inspect and control a running takopi.",
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config of the takopi to talk to (default: ~/.takopi/takopi.toml).",
)
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for each answer from the supervisor.",
)
@click.version_option(package_name="takopi", prog_name="takopictl")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, timeout: float) -> None:
    ctx.obj = {"config_path": config_path, "timeout": timeout}


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON document.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Supervisor, workers and runs in flight."""
    client = _client(ctx)
    raw = _guard(lambda: client.call("status"))
    runs = _guard(lambda: client.call("runs")).get("runs") or []
    doc = build_status(raw, runs)
    if as_json:
        _echo_json(doc)
        return
    for line in status_lines(doc):
        click.echo(line)


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> None:
    """Runs in flight and replies still owed to chats."""
    answer = _guard(lambda: _client(ctx).call("runs"))
    items = [normalize_run(r) for r in answer.get("runs") or [] if isinstance(r, dict)]
    pending = [p for p in answer.get("pending_deliveries") or [] if isinstance(p, dict)]
    if as_json:
        _echo_json({"schema_version": 1, "runs": items, "pending_deliveries": pending})
        return
    for line in runs_table(items):
        click.echo(line)
    if pending:
        click.echo("")
        click.echo(f"pending deliveries: {len(pending)}")
        for line in table(
            ["DELIVERY", "RUN", "ENGINE", "CHAT"],
            [
                [p.get("delivery_id"), p.get("run_id"), p.get("engine"), p.get("channel_id")]
                for p in pending
            ],
        ):
            click.echo(line)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_id")
@click.pass_context
def cancel(ctx: click.Context, run_id: str) -> None:
    """Cancel one run (its chat still gets a terminal reply)."""
    answer = _guard(lambda: _client(ctx).call("cancel", {"run_id": run_id}))
    if not answer.get("cancelled"):
        click.echo(f"error: no run {run_id!r} in flight", err=True)
        raise SystemExit(EXIT_FAILED)
    click.echo(f"cancelled {run_id}")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("-n", "--lines", default=100, show_default=True, type=click.IntRange(min=0))
@click.pass_context
def logs(ctx: click.Context, name: str, lines: int) -> None:
    """Recent output of worker NAME (engine:codex, codex, or supervisor)."""
    answer = _guard(lambda: _client(ctx).call("logs", {"name": name, "lines": lines}))
    for line in answer.get("lines") or []:
        click.echo(str(line).rstrip("\n"))


@cli.command(epilog=EXIT_CODES_HELP)
@click.pass_context
def reload(ctx: click.Context) -> None:
    """Re-read the config; apply what can be applied live, list what needs a restart."""
    answer = _guard(lambda: _client(ctx).call("reload", timeout=60.0))
    if not answer.get("reloaded"):
        click.echo(
            f"error: reload failed: {answer.get('error')}; the previous config stays in use",
            err=True,
        )
        raise SystemExit(EXIT_FAILED)
    click.echo("config reloaded")
    restarted = answer.get("restarted") or []
    if restarted:
        click.echo(f"restarted (config changed): {', '.join(restarted)}")
    needed = answer.get("restart_required") or []
    if needed:
        click.echo(
            f"needs a restart to apply: {', '.join(needed)} "
            "(`takopictl restart <name>` or restart takopi)"
        )


def _resolve_targets(workers: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    if not names:
        return workers
    picked = []
    for name in names:
        match = next(
            (w for w in workers if name in (w.get("name"), w.get("id"))),
            None,
        )
        if match is None:
            known = ", ".join(str(w.get("name")) for w in workers) or "none"
            click.echo(f"error: unknown worker {name!r}; known: {known}", err=True)
            raise SystemExit(EXIT_FAILED)
        picked.append(match)
    return picked


def _busy_runs(client: ControlClient, engines: set[str]) -> list[dict[str, Any]]:
    answer = client.call("runs")
    return [
        r for r in answer.get("runs") or [] if isinstance(r, dict) and r.get("engine") in engines
    ]


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("names", nargs=-1)
@click.option(
    "--force",
    is_flag=True,
    help="Cancel the engine's runs in flight (each still gets a terminal reply) and kill now.",
)
@click.option(
    "--wait-timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Without --force: how long to wait for runs in flight before giving up.",
)
@click.pass_context
def restart(ctx: click.Context, names: tuple[str, ...], force: bool, wait_timeout: float) -> None:
    """Restart workers NAMES (all when none); a quarantined worker is released.

    The supervisor stops giving new runs to a restarting engine (they wait and start on the
    new worker); runs in flight are allowed to finish first, or with --force cancelled
    (each still gets its terminal reply).
    """
    client = _client(ctx)
    workers = _guard(lambda: client.call("status")).get("workers") or []
    targets = _resolve_targets([w for w in workers if isinstance(w, dict)], names)
    engines = {str(w.get("id")) for w in targets if w.get("kind") == "engine"}
    busy = _guard(lambda: _busy_runs(client, engines)) if engines and not force else []
    if busy:
        click.echo(
            f"waiting for {len(busy)} run(s) in flight on "
            f"{', '.join(sorted({str(r.get('engine')) for r in busy}))} "
            "(use --force to cancel them)"
        )
    target_names = [str(w.get("name")) for w in targets] if names else []
    # The supervisor does the waiting (no race with new runs); allow for it plus the restart.
    answer = _guard(
        lambda: client.call(
            "restart",
            {"names": target_names, "force": force, "wait_timeout": wait_timeout},
            timeout=wait_timeout + RESTART_ANSWER_MARGIN,
        )
    )
    cancelled = answer.get("cancelled") or 0
    if cancelled:
        click.echo(f"cancelled {cancelled} run(s) in flight")
    restarted = answer.get("restarted") or []
    click.echo(f"restarted: {', '.join(restarted)}" if restarted else "nothing to restart")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--no-wait", is_flag=True, help="Return as soon as the supervisor accepted.")
@click.option(
    "--wait-timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="How long to wait for the supervisor to exit.",
)
@click.pass_context
def stop(ctx: click.Context, no_wait: bool, wait_timeout: float) -> None:
    """Stop takopi gracefully (runs get their grace, then a terminal reply)."""
    client = _client(ctx)
    pid = _guard(lambda: client.call("status")).get("pid")
    _guard(lambda: client.call("stop"))
    if no_wait or not isinstance(pid, int):
        click.echo(f"stopping (pid {pid})")
        return
    deadline = time.monotonic() + wait_timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            click.echo(f"error: pid {pid} still running after {wait_timeout:g}s", err=True)
            raise SystemExit(EXIT_FAILED)
        time.sleep(0.1)
    click.echo(f"stopped (pid {pid})")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="takopictl", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILED)
    return EXIT_OK


__all__ = ["EXIT_CODES_HELP", "RequestFailed", "cli", "main"]

if __name__ == "__main__":
    sys.exit(main())
