"""The engine probe seen from the probing process: a probe that hangs (a ``sitecustomize``
that never returns, before the probe reads its request) is killed, its engines fail to load,
and nothing of it stays behind — no open descriptor, no blocked write of its request.

In-process :class:`EngineProber` with the real :class:`Spawner` (no fork server: the probe is
started fresh, so the hang applies), real probe processes and pipes; and, with the real fork
server, a fork answered too late.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from takopi.protocol import EngineLoaded, LoadFailed
from takopi.supervisor import probe as probe_module
from takopi.supervisor.probe import EngineProber
from takopi.supervisor.process import WorkerProcess
from takopi.supervisor.spawner import Spawner
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.anyio, pytest.mark.timeout(90)]

HANG = """
import os, sys, time

if os.environ.get("PYTHON_TAKOPI_TEST_PROBE_HANG") and "--probe" in sys.argv:
    time.sleep(600)
late = os.environ.get("PYTHON_TAKOPI_TEST_PROBE_LATE_READ")
if late and "--probe" in sys.argv:
    # Read the whole request just before the probe's deadline, never answer, and note
    # being still alive well past that deadline.
    delay, survived = late.split(":", 1)
    time.sleep(float(delay))
    while os.read(0, 65536):
        pass
    time.sleep(float(delay))
    open(survived, "w").close()
    time.sleep(600)
"""


class _RecordingSpawner(Spawner):
    """The real spawner, noting which pipes (by inode) each probe start was handed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.starts: list[tuple[bool, int, int]] = []
        self.procs: list[WorkerProcess] = []
        self.lose_first_kill = False
        """Ignore each probe's first kill(), as if it were stuck in the kernel past its
        exit wait; the kill of its release then ends it."""

    async def start_probe(
        self, python: str | None, *, stdin: int, stdout: int, fork: bool = True
    ) -> WorkerProcess | None:
        self.starts.append((fork, os.fstat(stdin).st_ino, os.fstat(stdout).st_ino))
        proc = await super().start_probe(python, stdin=stdin, stdout=stdout, fork=fork)
        if proc is not None:
            self.procs.append(proc)
            if self.lose_first_kill:
                _lose_first_kill(proc)
        return proc


def _lose_first_kill(proc: WorkerProcess) -> None:
    real_kill = proc.kill
    calls: list[None] = []

    def kill() -> None:
        calls.append(None)
        if len(calls) > 1:
            real_kill()

    proc.kill = kill  # type: ignore[method-assign]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def prober(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EngineProber:
    monkeypatch.setenv("PYTHON_TAKOPI_TEST_PROBE_HANG", "1")
    return _prober_with_site(tmp_path, monkeypatch, timeout=1.0)


def _prober_with_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, timeout: float
) -> EngineProber:
    """A prober whose fresh probes run :data:`HANG` as their ``sitecustomize``."""
    site = tmp_path / "hang-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HANG)
    paths = [str(site), *(p for p in sys.path if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    spawner = _RecordingSpawner(
        rpc_address=f"ipc://{tmp_path}/sup", config_path=tmp_path / "takopi.toml", echo=None
    )
    return EngineProber(spawner, timeout=timeout)


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


async def test_a_released_probe_is_killed_and_reaped(
    prober: EngineProber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No exit wait, and the timeout's kill is lost: the probe is still alive when released.
    monkeypatch.setattr(probe_module, "EXIT_WAIT", 0.0)
    spawner = prober._launcher
    assert isinstance(spawner, _RecordingSpawner)
    spawner.lose_first_kill = True
    results = await _probe(prober, tmp_path)
    assert isinstance(results["codex"], LoadFailed)
    [proc] = spawner.procs
    assert proc.exit is None and proc.pid is not None  # released, not watched to its end
    wait_until(lambda: _gone(proc.pid), what="the released probe reaped")


RELEASED_FORK = """
import json, os, signal, sys
from pathlib import Path

import anyio
import psutil

sys.path.insert(0, {tests!r})
from takopi.supervisor import probe as probe_module
from takopi.supervisor.probe import EngineProber
from takopi.supervisor.reaper import become_subreaper
from tests.process.test_engine_probe import _RecordingSpawner, _gone
from tests.support.waiting import wait_until


class StoppingSpawner(_RecordingSpawner):
    async def start_probe(self, python, *, stdin, stdout, fork=True):
        proc = await super().start_probe(python, stdin=stdin, stdout=stdout, fork=fork)
        if proc is not None:
            os.kill(proc.pid, signal.SIGSTOP)  # it never answers
        return proc


async def main(tmp: Path) -> dict:
    assert become_subreaper()  # forked probes are re-parented to us, as to the supervisor
    probe_module.EXIT_WAIT = 0.0
    spawner = StoppingSpawner(rpc_address=f"ipc://{{tmp}}/sup", config_path=tmp / "t.toml", echo=None)
    spawner.lose_first_kill = True  # still alive (if stopped) when released
    spawner.start_zygote(True)
    try:
        assert await spawner.zygote.wait_ready(60)
        prober = EngineProber(spawner, timeout=0.5)
        results = await prober.probe({{"codex": {{}}}}, python=None, config_path=tmp / "t.toml")
        [proc] = spawner.procs
        [(forked, _, _)] = spawner.starts
        released = proc.exit is None
        try:
            wait_until(lambda: _gone(proc.pid), timeout=10)
            gone = True
        except AssertionError:
            gone = False
        return {{"error": results["codex"].error, "forked": forked, "released": released,
                 "gone": gone}}
    finally:
        spawner.close()


print(json.dumps(anyio.run(main, Path(sys.argv[1]))))
"""


def test_a_released_forked_probe_is_killed_and_reaped(tmp_path: Path) -> None:
    # A probe forked by the fork server is no Popen of ours: nothing reaps it unless the
    # release does. Run in a child process that is a subreaper, as the supervisor is.
    script = RELEASED_FORK.format(tests=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "did not finish loading within 0.5s" in report["error"], report
    assert (report["forked"], report["released"], report["gone"]) == (True, True, True), report


async def test_reading_the_request_and_answering_share_one_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe takes 80% of its time to read its (pipe-filling) request, then never
    # answers: it is killed at the deadline, before it lives long enough to leave a mark
    # (with a fresh answer timeout after the request, it would).
    survived = tmp_path / "survived"
    monkeypatch.setenv("PYTHON_TAKOPI_TEST_PROBE_LATE_READ", f"1.6:{survived}")
    prober = _prober_with_site(tmp_path, monkeypatch, timeout=2.0)
    results = await prober.probe(
        {"codex": {"padding": "x" * 1_000_000}},
        python=None,
        config_path=tmp_path / "takopi.toml",
    )
    failed = results["codex"]
    assert isinstance(failed, LoadFailed)
    assert "did not finish loading within 2s" in failed.error
    spawner = prober._launcher
    assert isinstance(spawner, _RecordingSpawner)
    [proc] = spawner.procs
    assert proc.pid is not None
    wait_until(lambda: _gone(proc.pid), what="the probe killed and reaped")
    assert not survived.exists()


def _gone(pid: int) -> bool:
    """No process (not even a zombie) has this pid."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False
