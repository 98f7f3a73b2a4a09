"""The engine probe seen from the probing process: a probe that hangs (a ``sitecustomize``
that never returns, before the probe reads its request) is killed, its engines fail to load,
and nothing of it stays behind — no open descriptor, no blocked write of its request.

In-process :class:`EngineProber` with the real :class:`Spawner` (no fork server: the probe is
started fresh, so the hang applies), real probe processes and pipes; and, with the real fork
server, a fork answered too late.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from takopi.protocol import EngineLoaded, LoadFailed
from takopi.supervisor import probe as probe_module
from takopi.supervisor.probe import EngineProber
from takopi.supervisor.process import WorkerProcess
from takopi.supervisor.spawner import Spawner

pytestmark = [pytest.mark.process, pytest.mark.anyio, pytest.mark.timeout(90)]

HANG = """
import os, sys, time

if os.environ.get("PYTHON_TAKOPI_TEST_PROBE_HANG") and "--probe" in sys.argv:
    time.sleep(600)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def prober(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EngineProber:
    site = tmp_path / "hang-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HANG)
    paths = [str(site), *(p for p in sys.path if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("PYTHON_TAKOPI_TEST_PROBE_HANG", "1")
    spawner = Spawner(
        rpc_address=f"ipc://{tmp_path}/sup", config_path=tmp_path / "takopi.toml", echo=None
    )
    return EngineProber(spawner, timeout=1.0)


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


async def test_a_probe_outliving_its_exit_wait_leaves_no_descriptor(
    prober: EngineProber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No exit wait at all: the killed probe always outlives it (as one stuck in the kernel
    # would outlive the real five seconds).
    monkeypatch.setattr(probe_module, "EXIT_WAIT", 0.0)
    await _probe(prober, tmp_path)  # warm-up: lazily opened descriptors (loop, logging)
    before = _open_fds()
    for _ in range(3):
        results = await _probe(prober, tmp_path)
        failed = results["codex"]
        assert isinstance(failed, LoadFailed)
        assert "did not finish loading within 1s" in failed.error
    assert _open_fds() == before
    assert prober.pids == set()


async def test_a_probe_that_never_reads_its_request_does_not_block_the_prober(
    prober: EngineProber, tmp_path: Path
) -> None:
    # A request larger than a pipe's buffer: writing it blocks until the probe reads.
    table = {"padding": "x" * 1_000_000}
    before = _open_fds()
    results = await prober.probe(
        {"codex": table, "claude": {}}, python=None, config_path=tmp_path / "takopi.toml"
    )
    for engine in ("codex", "claude"):
        failed = results[engine]
        assert isinstance(failed, LoadFailed), engine
        assert "did not read its request within 1s" in failed.error
    assert _open_fds() == before


async def _probe(prober: EngineProber, tmp_path: Path) -> dict[str, object]:
    return dict(
        await prober.probe({"codex": {}}, python=None, config_path=tmp_path / "takopi.toml")
    )


class _RecordingSpawner(Spawner):
    """The real spawner, noting which pipes (by inode) each probe start was handed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.starts: list[tuple[bool, int, int]] = []

    async def start_probe(
        self, python: str | None, *, stdin: int, stdout: int, fork: bool = True
    ) -> WorkerProcess | None:
        self.starts.append((fork, os.fstat(stdin).st_ino, os.fstat(stdout).st_ino))
        return await super().start_probe(python, stdin=stdin, stdout=stdout, fork=fork)


async def test_a_fork_answered_too_late_never_shares_its_pipes(tmp_path: Path) -> None:
    # The fork server gets no time to answer (it does fork, later): the probe started
    # instead must not be handed the pipes the late fork holds.
    spawner = _RecordingSpawner(
        rpc_address=f"ipc://{tmp_path}/sup", config_path=tmp_path / "takopi.toml", echo=None
    )
    spawner.start_zygote(True)
    try:
        assert spawner.zygote is not None
        assert await spawner.zygote.wait_ready(60)
        spawner.fork_timeout = 0.0
        prober = EngineProber(spawner, timeout=30.0)
        results = await prober.probe(
            {"codex": {}}, python=None, config_path=tmp_path / "takopi.toml"
        )
        assert isinstance(results["codex"], EngineLoaded), results
        assert [fork for fork, _, _ in spawner.starts] == [True, False]
        (_, forked_in, forked_out), (_, fresh_in, fresh_out) = spawner.starts
        assert {forked_in, forked_out}.isdisjoint({fresh_in, fresh_out})
    finally:
        spawner.close()
