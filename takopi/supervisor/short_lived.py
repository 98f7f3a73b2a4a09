"""Children the supervisor runs and waits for itself (the config check): registered, so the
reaper (:mod:`takopi.supervisor.reaper`) leaves them alone. Standard library only: the check
starts before the supervisor's own imports (:func:`takopi.supervisor.early.start_config_check`).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator


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


__all__ = ["SHORT_LIVED", "ShortLivedChildren"]
