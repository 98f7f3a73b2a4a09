"""Child subreaper: processes a dead worker leaves behind are re-parented to the supervisor,
which kills them (whole process groups) and reaps them.

Only pids that are not tracked workers are touched, so a worker's exit status is never stolen
from its :class:`~takopi.supervisor.process.WorkerProcess` (no ``waitpid(-1)`` anywhere).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

import psutil

from takopi.logging import get_logger
from takopi.supervisor.process import kill_pids
from takopi.utils.libc import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, prctl

log = get_logger(__name__)


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux only)."""
    ok = prctl(PR_SET_CHILD_SUBREAPER, 1)
    if not ok:
        log.warning("reaper.subreaper_unavailable")
    return ok


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies."""
    return prctl(PR_SET_PDEATHSIG, signum)


class ShortLivedChildren:
    """Children the supervisor runs itself and waits for (the config check): the reaper
    leaves them alone. Started under a lock that the reaper takes too, so that a sweep never
    sees such a child before it is registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` (stdin /dev/null, stdout and stderr piped), registered; collect it
        with :meth:`finish`."""
        with self._lock:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            self._pids.add(proc.pid)
        return proc

    def finish(
        self, proc: subprocess.Popen[bytes], *, timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        """Wait for a child from :meth:`start` (blocking: call it from a thread); killed on
        timeout (``TimeoutExpired``)."""
        try:
            with proc:
                try:
                    out, err = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    raise
        finally:
            with self._lock:
                self._pids.discard(proc.pid)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def run(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[bytes]:
        """Like ``subprocess.run(argv, capture_output=True, timeout=timeout)`` with stdin
        from /dev/null: :meth:`start` then :meth:`finish`."""
        return self.finish(self.start(argv), timeout=timeout)

    @contextlib.contextmanager
    def held(self) -> Iterator[set[int]]:
        """The children running now; none starts until the block ends."""
        with self._lock:
            yield set(self._pids)


SHORT_LIVED = ShortLivedChildren()
"""The supervisor's short-lived children (one registry per process)."""


class Reaper:
    """Kills and reaps children that are not known workers (nor :data:`SHORT_LIVED`)."""

    def __init__(self, known_pids: Callable[[], set[int]]) -> None:
        self._known_pids = known_pids

    def sweep(self) -> int:
        """Kill orphans adopted from dead workers and reap zombies; returns how many."""
        with SHORT_LIVED.held() as running:  # none starts while the sweep decides
            return self._sweep(self._known_pids() | running)

    def _sweep(self, known: set[int]) -> int:
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return 0
        strays = [c for c in children if c.pid not in known]
        if not strays:
            return 0
        live = []
        for child in strays:
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE:
                    live.append(child.pid)
        killed = kill_pids(live, exclude={os.getpid()}) if live else 0
        if killed:
            log.warning("reaper.killed_orphans", count=killed, pids=live)
        for child in strays:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(child.pid, os.WNOHANG)
        return killed


__all__ = [
    "SHORT_LIVED",
    "Reaper",
    "ShortLivedChildren",
    "become_subreaper",
    "set_parent_death_signal",
]
