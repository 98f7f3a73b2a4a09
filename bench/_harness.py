"""Shared helpers for the supervisor benchmarks (not part of the test suite)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.supervisor import SupervisorHarness, new_harness  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402


def harness() -> SupervisorHarness:
    """A supervisor harness in a short /tmp dir (ipc path limits)."""
    return new_harness("tkb")


def cleanup(h: SupervisorHarness) -> None:
    """Stop and remove everything the harness started."""
    import shutil

    h.stop()
    h.kill_all()
    shutil.rmtree(h.base, ignore_errors=True)


def python_floor(runs: int = 5) -> float:
    """Median seconds for ``python -c "import zmq, msgpack, anyio"`` (the spawn floor)."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import zmq, msgpack, anyio"], check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


__all__ = ["REPO", "SupervisorHarness", "cleanup", "harness", "os", "python_floor", "wait_until"]
