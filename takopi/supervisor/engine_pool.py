"""The engine workers as runs and the router see them (:class:`~takopi.supervisor.ports.
EngineAccess`): which engines exist (the :class:`~takopi.supervisor.engine_catalog.
EngineCatalog`), which worker is ready, starting one on first use and waiting for it, counting
the runs in flight on each so an operator restart can drain it, retiring the idle ones, and
the router's stand-in runner of each engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from takopi.supervisor.engine_catalog import EngineCatalog
from takopi.supervisor.ports import ResumeLines
from takopi.supervisor.runtime_service import EngineStandIn
from takopi.supervisor.watcher import Watcher, WorkerState
from takopi.supervisor.workers import Workers

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.supervisor.process import WorkerProcess


class EnginePool:
    """Engine watchers by engine id; implements :class:`~takopi.supervisor.ports.EngineAccess`."""

    def __init__(self, workers: Workers, resume_lines: ResumeLines) -> None:
        self._workers = workers
        self.resume_lines = resume_lines
        self._stand_ins: dict[str, EngineStandIn] = {}
        self.catalog = EngineCatalog()
        self.stopping = False
        """Set at shutdown: nobody waits for an engine any more."""

    def watcher(self, engine: str) -> Watcher | None:
        """The watcher of ``engine``."""
        return self._workers.get(f"engine:{engine}")

    def ids(self) -> list[str]:
        """The engines the router offers (empty until the catalog decided)."""
        return list(self.catalog.ids)

    def watchers(self) -> list[Watcher]:
        """The engine workers' watchers (engines that can run)."""
        return self._workers.of_kind("engine")

    def live(self) -> bool:
        """Some engine worker has a process (running, starting, restarting or retiring)."""
        return any(w.running for w in self.watchers())

    def last_used(self) -> float:
        """When any engine worker was last used (or became ready)."""
        return max((w.last_used for w in self.watchers()), default=0.0)

    def retire_idle(self, idle_s: float) -> list[str]:
        """Retire the ready engine workers unused for ``idle_s`` seconds; their names."""
        now = time.monotonic()
        return [
            w.name
            for w in self.watchers()
            if w.state is WorkerState.READY and now - w.last_used >= idle_s and w.retire()
        ]

    def describe(self) -> list[dict[str, Any]]:
        """Every installed engine: load status, whether it is offered, its worker's state."""
        rows = self.catalog.describe()
        for row in rows:
            watcher = self.watcher(row["id"])
            row["worker"] = watcher.state.value if watcher is not None else None
        return rows

    def stand_in(self, engine: str) -> EngineStandIn:
        """The router's runner for ``engine`` (one per engine, kept across incarnations)."""
        stand_in = self._stand_ins.get(engine)
        if stand_in is None:
            stand_in = EngineStandIn(engine, self, self.resume_lines)
            self._stand_ins[engine] = stand_in
        return stand_in

    # ------------------------------------------------------------------ EngineAccess

    def ready_peer(self, engine: str) -> Peer | None:
        """The ready engine worker's connection, or None."""
        watcher = self.watcher(engine)
        return watcher.ready_peer if watcher is not None else None

    async def wait_ready_peer(self, engine: str, timeout: float) -> Peer | None:
        """Wait (bounded) for the engine worker to be ready, starting it if it is not running
        (first use, or retired); None if it cannot be."""
        watcher = self.watcher(engine)
        if watcher is None:
            return None
        with anyio.move_on_after(timeout):
            while True:
                peer = watcher.ready_peer
                if peer is not None:
                    watcher.last_used = time.monotonic()  # not retired under the caller
                    return peer
                if watcher.state.gave_up or self.stopping:
                    return None
                if watcher.state.idle:
                    watcher.start()
                elif watcher.state is WorkerState.STOPPED and not watcher.running:
                    return None
                # A lost peer is noticed a moment before the exit changes the state.
                with anyio.move_on_after(1.0):
                    await watcher.wait_changed()
        return None

    async def acquire(self, engine: str, run_id: str, timeout: float) -> Peer | None:
        """The ready engine worker's connection for run ``run_id``, counted as in flight on
        it. While an operator restart drains the engine the run queues (no timeout: it starts
        on the new worker); then it waits (bounded by ``timeout``) for a ready worker. None
        if the engine cannot run. Pair with :meth:`release`."""
        watcher = self.watcher(engine)
        if watcher is None:
            return None
        while True:
            while watcher.draining and not self.stopping:
                await watcher.wait_changed()
            peer = await self.wait_ready_peer(engine, timeout)
            if peer is None:
                return None
            if not watcher.draining:
                watcher.active_runs.add(run_id)
                watcher.last_used = time.monotonic()
                return peer

    def release(self, engine: str, run_id: str) -> None:
        """Run ``run_id`` no longer uses the engine worker."""
        watcher = self.watcher(engine)
        if watcher is not None and run_id in watcher.active_runs:
            watcher.active_runs.discard(run_id)
            watcher.last_used = time.monotonic()
            watcher.notify()

    def issue(self, engine: str) -> str:
        """Why ``engine`` cannot run right now."""
        watcher = self.watcher(engine)
        if watcher is None:
            loaded = self.catalog.loaded(engine)
            if loaded is not None and loaded.issue:
                return f"engine {engine!r} is unavailable ({loaded.status}: {loaded.issue})"
            failed = self.catalog.load_error(engine)
            if failed is not None:
                return f"engine {engine!r} could not be loaded: {failed}"
            return f"engine {engine!r} is not configured"
        return f"engine {engine!r} is unavailable ({watcher.state.value}: {watcher.issue()})"

    def process(self, engine: str) -> WorkerProcess | None:
        """The engine's current worker process."""
        watcher = self.watcher(engine)
        return watcher.process if watcher is not None else None


__all__ = ["EnginePool"]
