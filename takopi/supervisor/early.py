"""Start the worker fork server (zygote) before the supervisor has read anything.

Preferred: :func:`start_early` imports the supervisor's and the workers' modules, then forks the
zygote from this process (no exec). The supervisor, the zygote and every worker forked from it
then share those pages copy-on-write (about 10 MiB of PSS per idle service). This is only done
while this process has read nothing but its argv and an environment free of transport secrets
(:func:`may_fork`: no variable that could hold a secret, see
:func:`~takopi.supervisor.worker_env.forkable_environment`), so the forked zygote holds no
secret, as a spawned one started with :func:`~takopi.supervisor.worker_env.start_env`;
otherwise the zygote is spawned (:func:`spawn_early`) and its imports overlap with ours on a
second core. Either way the zygote knows nothing about the config: the RPC endpoint travels in
every fork request and each worker's environment arrives with its handshake. This module
imports only the standard library (and the stdlib-only worker_env).

Entry points call :func:`start_early` as their first step; :class:`~takopi.supervisor.zygote.
Zygote` adopts the process with :func:`take_early`, or spawns one through
:func:`spawn_zygote_process` if there was none (a zygote started later is always spawned: the
supervisor has read its config by then). An early zygote nobody adopts exits by itself: it sees
end-of-file on its socket when this process exits.
"""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from takopi.supervisor.worker_env import forkable_environment, start_env, worker_command

if TYPE_CHECKING:
    from takopi.supervisor.config_check import PendingCheck


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
    """``python -P -m takopi.worker --zygote`` with a SEQPACKET socket as ``--secret-fd``.

    Its stderr is ours (it only writes there when a fork or a preload fails; a pipe nobody
    drains could fill up and block it), stdout and stdin are /dev/null, and it leads its own
    session (a terminal's ^C does not reach it). Forked workers get their own output pipes.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        fd = theirs.fileno()
        argv = [
            *worker_command(),
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


class ForkedPopen(subprocess.Popen[bytes]):
    """A :class:`subprocess.Popen` for a child made here by ``os.fork()`` (no pipes): ``poll``,
    ``wait``, ``send_signal``, ``terminate`` and ``kill`` work as for a spawned child."""

    def __init__(self, pid: int, args: list[str]) -> None:  # nothing to spawn: no super()
        # The state CPython's POSIX Popen methods read (checked on 3.11 to 3.13).
        self.args = args
        self.pid = pid
        self.returncode = None
        self.stdin = self.stdout = self.stderr = None
        self.text_mode = False
        self.encoding = self.errors = None
        self._waitpid_lock = threading.Lock()
        self._input = None
        self._communication_started = False
        self._sigint_wait_secs = 0.25
        self._closed_child_pipe_fds = True
        self._child_created = True


def may_fork() -> bool:
    """This process may fork the zygote: no thread runs besides ours (a fork copies only the
    calling thread), and no variable of the environment could hold a secret (the zygote and
    every worker forked from it would keep a copy of the environment block in memory)."""
    return (
        hasattr(os, "fork") and threading.active_count() == 1 and forkable_environment(os.environ)
    )


def fork_zygote_process(env: dict[str, str]) -> ZygoteProcess:
    """``takopi.worker --zygote`` as a fork of this process, set up as
    :func:`spawn_zygote_process` sets up a spawned one: its own session, stdin and stdout on
    /dev/null, our stderr, no other descriptor but its end of the socket, ``env`` as its
    environment (what the programs it starts get)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = theirs.fileno()
    parent = os.getpid()
    argv = ["--zygote", "--supervisor-pid", str(parent), "--secret-fd", str(fd)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        raise
    if pid == 0:  # the zygote: never returns
        code = 70  # EX_SOFTWARE, should the zygote fail before it runs
        try:
            ours.close()
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.closerange(3, fd)
            os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
            os.environ.clear()
            os.environ.update(env)
            _drop_cwd_entry()
            # What ``python -P -m takopi.worker ARGV`` would run, in this already loaded process.
            sys.argv = ["takopi.worker", *argv]
            runpy.run_module("takopi.worker", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            print(f"takopi zygote: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    theirs.close()
    ours.setblocking(False)
    return ZygoteProcess(ForkedPopen(pid, ["takopi.worker", *argv]), ours, env)


def _drop_cwd_entry() -> None:
    """Remove the current directory from the front of ``sys.path``, where ``python -m`` or
    ``-c`` put it for this process: a forked fork server must not import from it any more
    than a spawned one (started with ``-P``, see
    :func:`~takopi.supervisor.worker_env.worker_command`) does."""
    if sys.flags.safe_path or not sys.path:
        return
    first = sys.path[0]
    if first == "" or os.path.realpath(first) == os.path.realpath(os.getcwd()):
        del sys.path[0]


def _import_shared() -> None:
    """Import what the workers need and the supervisor imports anyway: the worker stack.
    Modules only the supervisor uses are left out: shared with a fork server that never touches
    them, they would only end up as two copies once the supervisor writes to them. So is
    pydantic, which the supervisor never imports (the fork server loads it for the transport:
    :func:`takopi.worker.main._preload`)."""
    import gc

    from takopi.worker_stack import import_worker_stack

    import_worker_stack()
    # The imported objects live for good: keep our own collector from writing to (and so
    # un-sharing) their pages, as the zygote does for its workers.
    gc.collect()
    gc.freeze()


_early: ZygoteProcess | None = None


def start_early() -> None:
    """Start the zygote for the supervisor this process is about to become: forked once our
    imports are done when :func:`may_fork` allows (shared pages), else spawned at once
    (overlapping imports). Call it before reading any config."""
    global _early
    if _early is not None:
        return
    if may_fork():
        _import_shared()
        if may_fork():  # an import started no thread
            try:
                _early = fork_zygote_process(start_env(os.environ))
                return
            except OSError:
                pass
    spawn_early()


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


_early_check: PendingCheck | None = None


def start_config_check(config_arg: str | None) -> None:
    """Start validating the config (``--config`` as given, or the default) in a child process
    now, before the supervisor's own imports, so that the check overlaps them; the supervisor
    collects it with :func:`take_config_check`."""
    global _early_check
    from takopi.config import resolve_config_path
    from takopi.supervisor.config_check import PendingCheck  # stdlib + takopi.config only

    if _early_check is None:
        _early_check = PendingCheck(resolve_config_path(config_arg))


def take_config_check(config_path: Path) -> PendingCheck | None:
    """The check :func:`start_config_check` started, if it is for ``config_path`` and the file
    did not change since (then it is yours); any other is discarded (onboarding may have
    written the config meanwhile)."""
    global _early_check
    check, _early_check = _early_check, None
    if check is None or (check.config_path == config_path and not check.stale()):
        return check
    check.discard()
    return None


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
    "ForkedPopen",
    "ZygoteProcess",
    "discard",
    "discard_early",
    "fork_zygote_process",
    "may_fork",
    "spawn_early",
    "spawn_zygote_process",
    "start_early",
    "take_early",
]
