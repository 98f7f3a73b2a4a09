"""``takopi service install|uninstall|status``: the systemd **user** unit for this installation.

The unit text is generated here (:func:`render_unit`) so that ``ExecStart``/``ExecReload`` point
at this very installation (its ``takopi``/``takopictl`` scripts, or ``<python> -m takopi.cli``);
``systemd/takopi.service`` in the repository is the same text rendered for a ``pipx``-style
install in ``~/.local/bin``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from takopi.cli.common import display_path, fail
from takopi.config import HOME_CONFIG_PATH, resolve_config_path
from takopi.logging import get_logger

log = get_logger(__name__)

DEFAULT_UNIT_NAME = "takopi"
RESTART_STEPS_MIN_VERSION = 254
"""systemd release that added ``RestartSteps=``/``RestartMaxDelaySec=`` (exponential backoff)."""


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """What varies between installations of the unit."""

    exec_start: Sequence[str]
    exec_reload: Sequence[str]
    working_directory: str | None = None
    path_env: str | None = None
    systemd_version: int | None = None


def sd_escape(arg: str, *, dollar: bool = True) -> str:
    """One word for ``ExecStart=`` or ``Environment=``: specifiers (``%``) and, in command
    lines, variable references (``$``) escaped; double-quoted when it has blanks or quotes."""
    text = arg.replace("%", "%%")
    if dollar:
        text = text.replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sd_command(argv: Sequence[str]) -> str:
    """A whole command line for ``ExecStart=``/``ExecReload=``.

    systemd expands ``$VAR`` in the arguments but not in the executable path, so ``$`` is only
    doubled after the first word.
    """
    return " ".join(sd_escape(a, dollar=i > 0) for i, a in enumerate(argv))


def render_unit(spec: UnitSpec) -> str:
    """The unit file text."""
    backoff = ["RestartSec=2s"]
    if spec.systemd_version is not None and spec.systemd_version >= RESTART_STEPS_MIN_VERSION:
        backoff += ["RestartSteps=6", "RestartMaxDelaySec=2min"]
    else:
        backoff.insert(
            0,
            "# systemd >= 254: `takopi service install` adds RestartSteps=6 and "
            "RestartMaxDelaySec=2min.",
        )
    env = ["Environment=PYTHONUNBUFFERED=1"]
    if spec.path_env:
        env.append(f"Environment={sd_escape('PATH=' + spec.path_env, dollar=False)}")
    workdir = (
        # WorkingDirectory= takes the path as is (no quoting); only specifiers need escaping.
        [f"WorkingDirectory={spec.working_directory.replace('%', '%%')}"]
        if spec.working_directory
        else ["WorkingDirectory=~"]
    )
    lines = [
        "# takopi as a systemd user service (written by `takopi service install`).",
        "# Manage it with `systemctl --user start|stop|reload|status takopi` and `takopictl`.",
        "[Unit]",
        "Description=takopi: chat bridge for coding agents",
        "Documentation=https://takopi.dev/",
        "# Stop retrying after 10 failed starts in 10 minutes (see `journalctl --user -u takopi`).",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "# READY=1 once the transport and engine workers are up; WATCHDOG=1 from the event loop.",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={sd_command(spec.exec_start)}",
        f"ExecReload={sd_command(spec.exec_reload)}",
        "Restart=on-failure",
        *backoff,
        "TimeoutStartSec=120",
        "# In-flight runs get a grace period, then a terminal reply, before workers stop.",
        "TimeoutStopSec=90",
        "WatchdogSec=30s",
        "# SIGTERM to the supervisor only (it stops its workers in order); SIGKILL to the whole",
        "# cgroup, agent CLIs included, only if it has not finished by TimeoutStopSec.",
        "KillMode=mixed",
        "RuntimeDirectory=takopi",
        "RuntimeDirectoryMode=0700",
        *workdir,
        *env,
        "UMask=0077",
        "# Hardening that keeps agent CLIs working: they read and write project dirs anywhere in",
        "# $HOME, spawn shells, git and node (JIT: no MemoryDenyWriteExecute), and use /tmp.",
        "NoNewPrivileges=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "SystemCallArchitectures=native",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


_HOME_MARK = "@@HOME@@"


def reference_unit() -> str:
    """The unit shipped as ``systemd/takopi.service``: scripts in ``~/.local/bin`` (pipx).

    Uses the ``%h`` specifier (the user's home) and leaves out the systemd >= 254 backoff keys.
    """
    spec = UnitSpec(
        exec_start=[f"{_HOME_MARK}/.local/bin/takopi"],
        exec_reload=[f"{_HOME_MARK}/.local/bin/takopictl", "reload"],
        working_directory=None,
        path_env=f"{_HOME_MARK}/.local/bin:/usr/local/bin:/usr/bin:/bin",
        systemd_version=None,
    )
    return render_unit(spec).replace(_HOME_MARK, "%h")


def systemd_version() -> int | None:
    """The running systemd's version number (``systemctl --version``), or None."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        out = subprocess.run(
            [systemctl, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else None


def installation_commands() -> tuple[list[str], list[str]]:
    """``(takopi argv, takopictl argv)`` for this installation."""
    bindir = Path(sys.executable).parent
    takopi, ctl = bindir / "takopi", bindir / "takopictl"
    if os.access(takopi, os.X_OK) and os.access(ctl, os.X_OK):
        return [str(takopi)], [str(ctl)]
    python = str(Path(sys.executable).absolute())
    return [python, "-P", "-m", "takopi.cli"], [python, "-P", "-m", "takopi.cli.ctl"]


def unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def build_spec(
    *, config_path: Path | None, transport: str | None, workdir: Path | None
) -> UnitSpec:
    """The unit for this installation, optional ``--config``/``--transport`` baked in."""
    takopi, ctl = installation_commands()
    extra: list[str] = []
    ctl_extra: list[str] = []
    if config_path is not None and config_path != HOME_CONFIG_PATH:
        extra += ["--config", str(config_path)]
        ctl_extra += ["--config", str(config_path)]
    if transport:
        extra += ["--transport", transport]
    return UnitSpec(
        exec_start=[*takopi, *extra],
        exec_reload=[*ctl, *ctl_extra, "reload"],
        working_directory=str(workdir) if workdir is not None else None,
        path_env=os.environ.get("PATH"),
        systemd_version=systemd_version(),
    )


def _systemctl(*args: str) -> tuple[bool, str]:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return False, "systemctl not found"
    try:
        proc = subprocess.run(
            [systemctl, "--user", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    output = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0, output


def _exec_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            return line.removeprefix("ExecStart=")
    return None


@click.group("service", help="Install or remove takopi as a systemd user service.")
def service_group() -> None:
    """``takopi service`` subcommands."""


name_opt = click.option(
    "--name", default=DEFAULT_UNIT_NAME, show_default=True, help="Unit name (without .service)."
)


@service_group.command("install", help="Write the user unit for this installation.")
@name_opt
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file the service uses (default: ~/.takopi/takopi.toml).",
)
@click.option("--transport", default=None, help="Transport override for the service.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Working directory for runs outside projects (default: the current directory).",
)
@click.option("--enable", is_flag=True, help="Also `systemctl --user enable --now` it.")
@click.pass_context
def install_cmd(
    ctx: click.Context,
    name: str,
    config_path: Path | None,
    transport: str | None,
    workdir: Path | None,
    enable: bool,
) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", name):
        fail(f"invalid unit name {name!r}.", 2)
    if config_path is None:
        config_path = (ctx.find_root().obj or {}).get("config_path")
    resolved = resolve_config_path(config_path).absolute() if config_path else None
    spec = build_spec(
        config_path=resolved,
        transport=transport,
        workdir=(workdir or Path.cwd()).absolute(),
    )
    path = unit_dir() / f"{name}.service"
    text = render_unit(spec)
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    log.info("service.installed", unit=str(path))
    click.echo(f"{'updated' if existed else 'wrote'} {display_path(path)}")
    click.echo(f"ExecStart={sd_command(spec.exec_start)}")
    ok, output = _systemctl("daemon-reload")
    if not ok:
        click.echo(f"note: could not reload the systemd user manager ({output or 'failed'}).")
        click.echo("run `systemctl --user daemon-reload` in your login session.")
    if enable:
        ok, output = _systemctl("enable", "--now", f"{name}.service")
        if not ok:
            fail(f"systemctl --user enable --now {name}.service failed: {output}")
        click.echo(f"enabled and started {name}.service")
    else:
        click.echo(f"start it with: systemctl --user enable --now {name}.service")
        click.echo("keep it running after logout: loginctl enable-linger $USER")


@service_group.command("uninstall", help="Stop, disable and remove the user unit.")
@name_opt
def uninstall_cmd(name: str) -> None:
    path = unit_dir() / f"{name}.service"
    if not path.exists():
        click.echo(f"no unit at {display_path(path)}; nothing to do.")
        return
    ok, output = _systemctl("disable", "--now", f"{name}.service")
    if not ok:
        click.echo(f"note: could not stop/disable {name}.service ({output or 'failed'}).")
    path.unlink()
    _systemctl("daemon-reload")
    log.info("service.uninstalled", unit=str(path))
    click.echo(f"removed {display_path(path)}")


@service_group.command("status", help="Show whether the unit is installed and current.")
@name_opt
def status_cmd(name: str) -> None:
    path = unit_dir() / f"{name}.service"
    if not path.exists():
        click.echo(f"unit: {display_path(path)} (not installed)")
        raise SystemExit(1)
    text = path.read_text()
    click.echo(f"unit: {display_path(path)} (installed)")
    exec_line = _exec_line(text) or "(none)"
    takopi, _ctl = installation_commands()
    current = exec_line.split(" --", 1)[0] == sd_command(takopi)
    click.echo(f"ExecStart={exec_line}")
    click.echo(
        "installation: matches this takopi"
        if current
        else f"installation: differs from this takopi ({sd_command(takopi)}); "
        "rerun `takopi service install`"
    )
    ok, output = _systemctl("is-active", f"{name}.service")
    click.echo(f"state: {output or ('active' if ok else 'unknown')}")


__all__ = [
    "UnitSpec",
    "build_spec",
    "installation_commands",
    "reference_unit",
    "render_unit",
    "sd_command",
    "sd_escape",
    "service_group",
    "systemd_version",
    "unit_dir",
]
