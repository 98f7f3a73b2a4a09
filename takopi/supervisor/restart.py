"""Operator restarts (``takopictl restart``, reloads that changed an engine's config).

A targeted engine first stops taking new runs (they queue); without ``force`` its runs in
flight may finish, with ``force`` they are cancelled (each still gets its terminal reply);
then the workers restart and, once the engines' new workers are ready, the queue is released.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from takopi.logging import get_logger
from takopi.supervisor.options import FORCE_DRAIN_TIMEOUT
from takopi.supervisor.runs import RESTART_REASON

if TYPE_CHECKING:
    from takopi.supervisor.options import SupervisorOptions
    from takopi.supervisor.registry import RunRegistry
    from takopi.supervisor.watcher import Watcher
    from takopi.supervisor.workers import Workers

log = get_logger(__name__)


class RestartRefused(Exception):
    """A restart gave up waiting for runs in flight; nothing was restarted."""


class RestartHost(Protocol):
    """The supervisor's state (every wait ends when it is stopping) and its options."""

    state: str
    options: SupervisorOptions


class Restarter:
    """Drains and restarts workers."""

    def __init__(self, workers: Workers, registry: RunRegistry, host: RestartHost) -> None:
        self._workers = workers
        self._registry = registry
        self._host = host

    def _stopping(self) -> bool:
        return self._host.state == "stopping"

    async def restart(
        self, names: list[str], *, force: bool, wait_timeout: float = 600.0
    ) -> dict[str, Any]:
        """Drain the targeted engines, restart the workers, wait for the engines' new
        workers. Returns ``{"restarted", "waited", "cancelled"}`` (run counts); raises
        :class:`RestartRefused` when runs are still going after ``wait_timeout`` (no
        ``force``) and KeyError for an unknown name."""
        targets = self._workers.resolve(names)
        for watcher in targets:
            while watcher.draining and not self._stopping():  # another restart's drain
                await watcher.wait_changed()
        engines = [w for w in targets if w.kind == "engine" and w.running and not w.state.gave_up]
        for watcher in engines:
            watcher.draining = True
            watcher.notify()
        try:
            waited = sum(len(w.active_runs) for w in engines)
            cancelled = 0
            if force:
                for watcher in engines:
                    for run_id in list(watcher.active_runs):
                        cancelled += self._registry.cancel(run_id, RESTART_REASON)
            if waited:
                log.info(
                    "supervisor.restart_draining",
                    engines=[w.plugin_id for w in engines],
                    runs=waited,
                    force=force,
                )
            with anyio.move_on_after(FORCE_DRAIN_TIMEOUT if force else wait_timeout):
                for watcher in engines:
                    while watcher.active_runs and not self._stopping():
                        await watcher.wait_changed()
            busy = [w.plugin_id for w in engines if w.active_runs]
            if busy and not force:
                raise RestartRefused(
                    f"runs still in flight on {', '.join(busy)} after {wait_timeout:g}s; "
                    "nothing restarted (use --force to cancel them)"
                )
            if self._stopping():
                return {"restarted": [], "waited": waited, "cancelled": cancelled}
            before = {w.name: w.incarnation for w in engines}
            restarted = self.restart_now([w.name for w in targets], force=force)
            await self._wait_new_incarnations(engines, before)
        finally:
            for watcher in engines:
                watcher.draining = False
                watcher.notify()
        return {"restarted": restarted, "waited": waited, "cancelled": cancelled}

    async def _wait_new_incarnations(
        self, engines: list[Watcher], before: Mapping[str, object]
    ) -> None:
        with anyio.move_on_after(self._host.options.load_timeout):
            for watcher in engines:
                while (
                    watcher.incarnation is before[watcher.name] or not watcher.state.settled
                ) and not self._stopping():
                    await watcher.wait_changed()

    def restart_now(self, names: list[str], *, force: bool) -> list[str]:
        """Restart the named workers (all when empty) right away; ``force`` kills and
        un-quarantines. (:meth:`restart` drains engines' runs first.)"""
        return [w.name for w in self._workers.resolve(names) if w.restart(force=force)]


__all__ = ["RestartRefused", "Restarter"]
