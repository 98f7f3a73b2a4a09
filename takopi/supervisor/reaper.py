"""Child subreaper: processes a dead worker leaves behind are re-parented to the supervisor,
which kills them (whole process groups) and reaps them.

Only pids that are not tracked workers are touched, so a worker's exit status is never stolen
from its :class:`~takopi.supervisor.process.WorkerProcess` (no ``waitpid(-1)`` anywhere).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import psutil

from takopi.logging import get_logger
from takopi.supervisor.process import kill_pids
from takopi.supervisor.short_lived import SHORT_LIVED
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


__all__ = ["Reaper", "become_subreaper", "set_parent_death_signal"]
