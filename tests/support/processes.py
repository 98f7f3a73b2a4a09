"""Processes a test started, found by a per-test environment marker (workers and agent CLIs
inherit it), so a test can prove that nothing it started is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.support.waiting import wait_until

MARK = "TAKOPI_PROCTEST_MARK"
"""Environment variable carrying the test's marker."""


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARK) == mark:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def assert_gone(mark: str, timeout: float = 5.0) -> None:
    """Every process carrying ``mark`` is gone (waited for, bounded)."""
    wait_until(lambda: not marked_processes(mark), timeout, what=f"processes marked {mark}")


def kill_marked(mark: str) -> None:
    """SIGKILL every process carrying ``mark`` (test teardown)."""
    for proc in marked_processes(mark):
        try:
            proc.kill()
        except psutil.Error:
            pass


__all__ = ["MARK", "assert_gone", "fresh_python", "kill_marked", "marked_processes", "terminate"]

REPO = Path(__file__).resolve().parents[2]


def fresh_python(code: str, *, timeout: float = 60.0) -> list[str]:
    """Run ``code`` in a fresh interpreter (this one, from the repository root): the lines it
    printed; fails the test, with its stderr, if it did not exit 0."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def terminate(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> int | None:
    """Stop a supervisor (or any process) the way systemd does: SIGTERM, then SIGKILL after
    ``timeout``; its exit code (None if there was no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode
