"""The engine probe, supervisor side: load-check engines in a short-lived process.

Which engines exist is decided before the transport builds its startup message and without a
worker per engine (:mod:`takopi.worker.probe` is the other side). One probe process per
interpreter checks its engines one after the other. A plugin that kills the probe while it
loads, or keeps it busy past the load timeout, fails alone: its engine is reported as a load
failure and a new probe carries on with the engines after it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from takopi.logging import get_logger
from takopi.protocol import EngineLoaded, EngineProbe, EngineProbed, LoadFailed
from takopi.protocol.framing import frame, read_frame
from takopi.rpc.codec import decode, encode
from takopi.supervisor.process import ExitInfo

log = get_logger(__name__)

ProbeResult = EngineLoaded | LoadFailed
"""What the probe learned about one engine (as an engine worker's ``load`` answers)."""

PLUGIN_FAILED = 3
"""``LoadFailed.exit_code`` of an engine the probe could not load (the worker's
``PLUGIN_FAILED``)."""


class _Attempt:
    """One probe process's answers, and the engine it was loading when it stopped."""

    def __init__(self) -> None:
        self.results: dict[str, ProbeResult] = {}
        self.loading: str | None = None
        self.stderr: deque[str] = deque(maxlen=20)
        self.problem = ""

    def take(self, item: Any) -> None:
        if not isinstance(item, EngineProbed):
            raise ValueError(f"unexpected probe frame: {type(item).__name__}")
        if item.result is None:
            self.loading = item.engine
            self.stderr.clear()  # what follows is this engine's
        else:
            self.results[item.engine] = item.result
            self.loading = None

    def why(self) -> str:
        tail = next((line for line in reversed(self.stderr) if line.strip()), "")
        return f"{self.problem}: {tail.strip()[-300:]}" if tail else self.problem


class EngineProber:
    """Runs engine probes; :attr:`pids` are the live ones (the reaper must leave them be)."""

    def __init__(self, *, env: Callable[[], dict[str, str]], timeout: float) -> None:
        self._env = env
        self.timeout = timeout
        """How long one engine may take to load (the workers' load timeout)."""
        self.pids: set[int] = set()
        self.starting = 0
        """Probes being spawned (their pid is not known yet: the reaper must wait)."""

    async def probe(
        self, engines: Mapping[str, dict[str, Any]], *, python: str | None, config_path: Path
    ) -> dict[str, ProbeResult]:
        """Every engine's answer (``engines``: id → its table), in one interpreter."""
        results: dict[str, ProbeResult] = {}
        pending = dict(engines)
        while pending:
            attempt = await self._attempt(pending, python=python, config_path=config_path)
            results.update(attempt.results)
            for engine in attempt.results:
                pending.pop(engine, None)
            if not pending:
                break
            culprit = attempt.loading
            if culprit is not None and culprit in pending:
                pending.pop(culprit)
                results[culprit] = LoadFailed(attempt.why(), PLUGIN_FAILED)
                log.warning("engine.probe_failed", engine=culprit, error=attempt.why())
                continue
            # Nothing to pin the failure on (the probe itself could not run): all fail alike.
            for engine in pending:
                results[engine] = LoadFailed(attempt.why(), PLUGIN_FAILED)
            log.error("engine.probe_broken", engines=sorted(pending), error=attempt.why())
            break
        return results

    async def _attempt(
        self, engines: Mapping[str, dict[str, Any]], *, python: str | None, config_path: Path
    ) -> _Attempt:
        attempt = _Attempt()
        argv = [python or sys.executable, "-m", "takopi.worker", "--probe"]
        argv += ["--supervisor-pid", str(os.getpid())]
        request = encode(EngineProbe(engines=dict(engines), config_path=str(config_path)))
        self.starting += 1
        try:
            process = await anyio.open_process(
                argv, env=self._env(), start_new_session=True, cwd=config_path.parent
            )
        except OSError as exc:
            attempt.problem = f"cannot start the engine probe: {exc}"
            return attempt
        else:
            self.pids.add(process.pid)
        finally:
            self.starting -= 1
        try:
            await self._converse(process, request, attempt)
        finally:
            if process.returncode is None:
                _kill_group(process)
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await process.wait()
            self.pids.discard(process.pid)
            await process.aclose()
        return attempt

    async def _converse(self, process: Process, request: bytes, attempt: _Attempt) -> None:
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_lines, process.stderr, attempt.stderr)
            try:
                await process.stdin.send(frame(request))
                await process.stdin.aclose()
            except (anyio.BrokenResourceError, OSError):
                pass  # it died at once: its exit says why
            timed_out = await _read_answers(process.stdout, attempt, self.timeout)
            if timed_out:
                attempt.problem = f"did not finish loading within {self.timeout:g}s"
                _kill_group(process)
            with anyio.move_on_after(2):
                await process.wait()
            if not timed_out and process.returncode not in (0, None):
                attempt.problem = (
                    "its plugin ended the engine probe while loading "
                    f"({ExitInfo(process.returncode).describe()})"
                )
            elif not attempt.problem:
                attempt.problem = "the engine probe ended without an answer"
            tg.cancel_scope.cancel()


async def _read_answers(stream: ByteReceiveStream, attempt: _Attempt, timeout: float) -> bool:
    """Read frames until EOF; True if one engine took longer than ``timeout``."""
    buffer = b""
    while True:
        with anyio.move_on_after(timeout) as scope:
            try:
                chunk = await stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return False
        if scope.cancelled_caught:
            return True
        buffer += chunk
        try:
            while True:
                frame, buffer = read_frame(buffer)
                if frame is None:
                    break
                attempt.take(decode(frame))
        except (ValueError, TypeError) as exc:
            attempt.problem = f"garbled engine probe answer: {exc}"
            return False


async def _collect_lines(stream: ByteReceiveStream, tail: deque[str]) -> None:
    """Keep the last lines a probe wrote to stderr (for error messages)."""
    pending = b""
    with contextlib.suppress(
        anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError
    ):
        while True:
            pending += await stream.receive()
            *lines, pending = pending.split(b"\n")
            tail.extend(line.decode("utf-8", "replace") for line in lines)
            pending = pending[-4096:]


def _kill_group(process: Process) -> None:
    """SIGKILL the probe's process group (it leads its own session): whatever a plugin
    started while being loaded goes with it."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)


__all__ = ["EngineProber", "ProbeResult"]
