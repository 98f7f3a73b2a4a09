"""Spawning engine CLIs in their own process group, and killing that whole group.

Each engine process is a session leader (``start_new_session=True``), so everything it starts
(shells, tools, language servers) shares its process group and can be signalled at once:
SIGTERM to the group, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import DEVNULL, PIPE

import anyio
from anyio.abc import Process

from takopi.logging import get_logger

_log = get_logger(__name__)

#: Seconds between SIGTERM and SIGKILL.
TERMINATE_GRACE_S = 2.0


async def spawn_process(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bool = True,
) -> Process:
    """Start ``argv`` with piped stdout/stderr in a new session (its own process group).

    ``stdin=False`` connects stdin to /dev/null. Raises ``OSError`` (``FileNotFoundError``
    for a missing executable or cwd) like :func:`subprocess.Popen`.
    """
    return await anyio.open_process(
        list(argv),
        stdin=PIPE if stdin else DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )


def group_alive(pgid: int) -> bool:
    """Whether any process that can still run is left in process group ``pgid``.

    ``killpg(pgid, 0)`` also succeeds for zombies, which a parent (or a PID 1 that does not
    reap) may keep around for a long time; they hold no resources, so waiting on them would
    only stretch every cancellation to the full grace period.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: trust killpg
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def signal_group(proc: Process, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group led by ``proc``; falls back to the process itself.

    Returns False when nothing was there to signal.
    """
    try:
        os.killpg(proc.pid, sig)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        pass
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
            return True
        except ProcessLookupError:
            return False
    return False


async def terminate_process(proc: Process, *, grace: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL what is left.

    Runs shielded from cancellation, so a cancelled run still cleans up its processes. Also
    reaps ``proc``. Safe to call when everything has already exited.
    """
    with anyio.CancelScope(shield=True):
        pgid = proc.pid
        if proc.returncode is None or group_alive(pgid):
            _log.debug("subprocess.terminate", pid=pgid)
            signal_group(proc, signal.SIGTERM)
            with anyio.move_on_after(grace):
                await proc.wait()
                # The leader is gone; give the rest of the group the same grace period.
                while group_alive(pgid):
                    await anyio.sleep(0.05)
            if proc.returncode is None or group_alive(pgid):
                _log.debug("subprocess.kill", pid=pgid)
                signal_group(proc, signal.SIGKILL)
        await proc.wait()


async def close_process_streams(proc: Process) -> None:
    """Close the pipes of ``proc`` (ignoring errors), shielded from cancellation."""
    with anyio.CancelScope(shield=True):
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is None:
                continue
            try:
                await stream.aclose()
            except Exception:
                pass


@asynccontextmanager
async def manage_subprocess(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bool = True,
    grace: float = TERMINATE_GRACE_S,
) -> AsyncIterator[Process]:
    """``async with manage_subprocess(argv) as proc:`` — spawn, then always clean up.

    On exit (normal, error or cancellation) the whole process group is terminated
    (:func:`terminate_process`) and the pipes are closed. Holds no cancel scope while the
    body runs, so it is safe to use around ``yield`` in an async generator.
    """
    proc = await spawn_process(argv, cwd=cwd, env=env, stdin=stdin)
    try:
        yield proc
    finally:
        await terminate_process(proc, grace=grace)
        await close_process_streams(proc)


def which_error(argv0: str, cwd: str | os.PathLike[str] | None) -> str:
    """Explain a ``FileNotFoundError`` from spawning: missing cwd or missing executable."""
    if cwd is not None and not Path(cwd).is_dir():
        return f"working directory not found: {os.fspath(cwd)}"
    return f"{argv0} not found on PATH"


__all__ = [
    "TERMINATE_GRACE_S",
    "close_process_streams",
    "group_alive",
    "manage_subprocess",
    "signal_group",
    "spawn_process",
    "terminate_process",
    "which_error",
]
