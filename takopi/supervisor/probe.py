"""The engine probe, supervisor side: load-check engines in a short-lived process.

Which engines exist is decided before the transport builds its startup message and without a
worker per engine (:mod:`takopi.worker.probe` is the other side). One probe per interpreter
checks its engines one after the other; on the supervisor's own interpreter the fork server
forks it with takopi's engines already imported, so healthy engines cost next to nothing. A
plugin that kills the probe while it loads, or keeps it busy past the load timeout, fails
alone: its engine is reported as a load failure and a new probe carries on after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio

from takopi.logging import get_logger
from takopi.protocol import EngineLoaded, EngineProbe, EngineProbed, LoadFailed
from takopi.protocol.framing import frame, read_frame
from takopi.rpc.codec import decode, encode
from takopi.supervisor.process import WorkerProcess

log = get_logger(__name__)

ProbeResult = EngineLoaded | LoadFailed
"""What the probe learned about one engine (as an engine worker's ``load`` answers)."""

EXIT_WAIT = 5.0
"""How long a probe may take to end once it answered or was killed."""

PLUGIN_FAILED = 3
"""``LoadFailed.exit_code`` of an engine the probe could not load (the worker's
``EXIT_PLUGIN_FAILED``)."""


class ProbeLauncher(Protocol):
    """Starts probe processes (the spawner)."""

    async def start_probe(
        self, python: str | None, *, stdin: int, stdout: int, fork: bool = True
    ) -> WorkerProcess | None:
        """A probe on these pipes; None when a fork was tried and gave no process (a late
        fork may still hold the pipes: try again on new ones, with ``fork=False``)."""
        ...


class _Attempt:
    """One probe process's answers, and the engine it was loading when it stopped."""

    def __init__(self) -> None:
        self.results: dict[str, ProbeResult] = {}
        self.loading: str | None = None
        self.stderr_from = 0
        self.problem = ""

    def take(self, item: Any, proc: WorkerProcess) -> None:
        if not isinstance(item, EngineProbed):
            raise ValueError(f"unexpected probe frame: {type(item).__name__}")
        if item.result is None:
            self.loading = item.engine
            self.stderr_from = len(proc.output)  # what follows is this engine's
        else:
            self.results[item.engine] = item.result
            self.loading = None

    def why(self, proc: WorkerProcess | None) -> str:
        lines = list(proc.output)[self.stderr_from :] if proc is not None else []
        tail = next((line for line in reversed(lines) if line.strip()), "")
        return f"{self.problem}: {tail.strip()[-300:]}" if tail else self.problem


class EngineProber:
    """Runs engine probes; :attr:`pids` are the live ones (the reaper must leave them be)."""

    def __init__(self, launcher: ProbeLauncher, *, timeout: float) -> None:
        self._launcher = launcher
        self.timeout = timeout
        """How long one engine may take to load (the workers' load timeout)."""
        self.pids: set[int] = set()

    async def probe(
        self,
        engines: Mapping[str, dict[str, Any]],
        *,
        python: str | None,
        config_path: Path,
        env: dict[str, str] | None = None,
    ) -> dict[str, ProbeResult]:
        """Every engine's answer (``engines``: id → its table), in one interpreter, loaded
        in ``env`` (the probe's own start environment when None)."""
        results: dict[str, ProbeResult] = {}
        pending = dict(engines)
        while pending:
            attempt, proc = await self._attempt(
                pending, python=python, config_path=config_path, env=env
            )
            results.update(attempt.results)
            for engine in attempt.results:
                pending.pop(engine, None)
            if not pending:
                break
            culprit = attempt.loading
            if culprit is not None and culprit in pending:
                pending.pop(culprit)
                results[culprit] = LoadFailed(attempt.why(proc), PLUGIN_FAILED)
                log.warning("engine.probe_failed", engine=culprit, error=attempt.why(proc))
                continue
            # Nothing to pin the failure on (the probe itself could not run): all fail alike.
            for engine in pending:
                results[engine] = LoadFailed(attempt.why(proc), PLUGIN_FAILED)
            log.error("engine.probe_broken", engines=sorted(pending), error=attempt.why(proc))
            break
        return results

    async def _attempt(
        self,
        engines: Mapping[str, dict[str, Any]],
        *,
        python: str | None,
        config_path: Path,
        env: dict[str, str] | None,
    ) -> tuple[_Attempt, WorkerProcess | None]:
        attempt = _Attempt()
        probe = EngineProbe(engines=dict(engines), config_path=str(config_path), env=env)
        request = frame(encode(probe))
        pipes = [*os.pipe(), *os.pipe()]
        try:
            proc = await self._launcher.start_probe(python, stdin=pipes[0], stdout=pipes[3])
            if proc is None:
                # A fork answered too late may yet start a probe on these pipes: it gets
                # EOF and EPIPE once they are closed (and the reaper kills it); ours gets
                # new ones, never sharing a pipe with it.
                _close_all(pipes)
                pipes = [*os.pipe(), *os.pipe()]
                proc = await self._launcher.start_probe(
                    python, stdin=pipes[0], stdout=pipes[3], fork=False
                )
            if proc is None:
                raise OSError("no process")
        except OSError as exc:
            attempt.problem = f"cannot start the engine probe: {exc}"
            _close_all(pipes)
            return attempt, None
        req_r, req_w, out_r, out_w = pipes
        os.close(req_r)
        os.close(out_w)
        if proc.pid is not None:
            self.pids.add(proc.pid)
        # Reading the request and answering for the first engine share one deadline: a
        # probe that reads slowly gets no extra time to answer.
        deadline = anyio.current_time() + self.timeout
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(proc.watch)
                with anyio.CancelScope(deadline=deadline) as sending:
                    await _send(req_w, request)
                if sending.cancelled_caught:
                    attempt.problem = f"did not read its request within {self.timeout:g}s"
                    proc.kill()
                elif await _read_answers(out_r, attempt, proc, deadline, self.timeout):
                    attempt.problem = f"did not finish loading within {self.timeout:g}s"
                    proc.kill()
                with anyio.move_on_after(EXIT_WAIT):
                    await proc.exited.wait()
                tg.cancel_scope.cancel()
        finally:
            with contextlib.suppress(OSError):
                os.close(out_r)
            if proc.exit is None:
                proc.release()  # outlived EXIT_WAIT: killed, reaped in the background
            proc.kill_leftovers()
            if proc.pid is not None:
                self.pids.discard(proc.pid)
        if not attempt.problem:
            if proc.exit is not None and proc.exit.returncode != 0:
                attempt.problem = (
                    f"its plugin ended the engine probe while loading ({proc.exit.describe()})"
                )
            else:
                attempt.problem = "the engine probe ended without an answer"
        return attempt, proc


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


async def _send(fd: int, data: bytes) -> None:
    """Write the request and close the pipe (a probe that died early: its exit says why)."""
    os.set_blocking(fd, False)
    try:
        view = memoryview(data)
        while view:
            await anyio.wait_writable(fd)
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
    except OSError:
        pass
    finally:
        os.close(fd)


async def _read_answers(
    fd: int, attempt: _Attempt, proc: WorkerProcess, deadline: float, timeout: float
) -> bool:
    """Read frames until EOF; True if nothing came by ``deadline`` (the first answer's), which
    moves to ``timeout`` after each piece of output (one engine's load time)."""
    os.set_blocking(fd, False)
    buffer = b""
    while True:
        with anyio.CancelScope(deadline=deadline) as scope:
            await anyio.wait_readable(fd)
        if scope.cancelled_caught:
            return True
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            return False
        deadline = anyio.current_time() + timeout
        buffer += chunk
        try:
            while True:
                payload, buffer = read_frame(buffer)
                if payload is None:
                    break
                attempt.take(decode(payload), proc)
        except (ValueError, TypeError) as exc:
            attempt.problem = f"garbled engine probe answer: {exc}"
            return False


__all__ = ["EngineProber", "ProbeLauncher", "ProbeResult"]
