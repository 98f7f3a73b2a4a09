"""Start the worker fork server (zygote) before the supervisor has imported itself.

The zygote spends most of start-up importing the worker stack; the supervisor spends about as
long importing its own modules and reading the config. Spawning the zygote first lets the two
overlap on a second core. This module therefore imports nothing beyond the standard library,
and the zygote it starts knows nothing about the config: the RPC endpoint travels in every fork
request, and each worker's environment arrives with its handshake (never through the zygote,
which is started with :func:`~takopi.supervisor.worker_env.start_env` and holds no secret).

Entry points call :func:`spawn_early` as their first step; :class:`~takopi.supervisor.zygote.
Zygote` adopts the process with :func:`take_early`, or spawns one through
:func:`spawn_zygote_process` if there was none. An early zygote nobody adopts exits by itself:
it sees end-of-file on its socket when this process exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from takopi.supervisor.worker_env import start_env


class ZygoteProcess:
    """A spawned fork server: its process, our end of its socket, the env it was given."""

    __slots__ = ("env", "popen", "sock")  # a plain class: importing dataclasses costs ~20 ms

    def __init__(
        self, popen: subprocess.Popen[bytes], sock: socket.socket, env: dict[str, str]
    ) -> None:
        self.popen = popen
        self.sock = sock
        self.env = env


def spawn_zygote_process(env: dict[str, str]) -> ZygoteProcess:
    """``python -m takopi.worker --zygote`` with a SEQPACKET socket as ``--secret-fd``.

    Its stderr is ours (it only writes there when a fork or a preload fails; a pipe nobody
    drains could fill up and block it), stdout and stdin are /dev/null, and it leads its own
    session (a terminal's ^C does not reach it). Forked workers get their own output pipes.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        fd = theirs.fileno()
        argv = [
            sys.executable,
            "-m",
            "takopi.worker",
            "--zygote",
            "--supervisor-pid",
            str(os.getpid()),
            "--secret-fd",
            str(fd),
        ]
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None,
            pass_fds=(fd,),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.setblocking(False)
    return ZygoteProcess(popen, ours, env)


_early: ZygoteProcess | None = None


def spawn_early() -> None:
    """Start a zygote now, for the supervisor this process is about to become (best effort:
    on failure the supervisor spawns one later the ordinary way)."""
    global _early
    if _early is not None:
        return
    try:
        _early = spawn_zygote_process(start_env(os.environ))
    except OSError:
        _early = None


def take_early() -> ZygoteProcess | None:
    """The zygote :func:`spawn_early` started, if it is still running (then it is yours)."""
    global _early
    early, _early = _early, None
    if early is not None and early.popen.poll() is not None:
        discard(early)
        return None
    return early


def discard_early() -> bool:
    """Stop an early zygote nobody will use; True if there was one."""
    global _early
    early, _early = _early, None
    if early is None:
        return False
    discard(early)
    return True


def discard(zygote: ZygoteProcess) -> None:
    """Stop a zygote that forked nothing yet and reap it (no zombie is left behind)."""
    zygote.sock.close()
    if zygote.popen.poll() is None:
        zygote.popen.kill()
    zygote.popen.wait()


__all__ = [
    "ZygoteProcess",
    "discard",
    "discard_early",
    "spawn_early",
    "spawn_zygote_process",
    "take_early",
]
