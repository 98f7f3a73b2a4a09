"""A running ``takopi --transport console`` driven through its stdin/stdout."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

TAKOPI = str(Path(sys.executable).with_name("takopi"))


class ConsoleSession:
    """A running `takopi --transport console` whose stdout is read line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [TAKOPI, "--transport", "console"],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def read_until(self, needle: str, timeout: float = 60) -> list[str]:
        """Lines read up to and including the first one containing ``needle``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            seen.append(line)
            if needle in line:
                return seen
        raise AssertionError(f"{needle!r} not seen; output so far:\n" + "\n".join(self.lines))


__all__ = ["TAKOPI", "ConsoleSession"]
