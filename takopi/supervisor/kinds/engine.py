"""Engine workers: load the runner from ``[<engine>]``; their readiness or loss changes what
the router offers (a snapshot is pushed to transports and commands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from takopi.logging import get_logger
from takopi.protocol import EngineLoad, EngineLoaded, LoadFailed
from takopi.supervisor.options import WORKER_STOP_TIMEOUT

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.engine_pool import EnginePool
    from takopi.supervisor.routing import Routing
    from takopi.supervisor.watcher import Incarnation, Watcher

log = get_logger(__name__)


def load_error(result: object) -> str:
    """The error of a failed ``load`` answer (or a description of an unexpected one)."""
    if isinstance(result, LoadFailed):
        return result.error
    return f"unexpected load answer: {result!r}"


class EngineKind:
    """One worker per engine; serves ``run`` and the resume helpers."""

    name = "engine"
    stop_timeout = WORKER_STOP_TIMEOUT
    inherit_stdio = False

    def __init__(self, config: SupervisorConfig, engines: EnginePool, routing: Routing) -> None:
        self._config = config
        self._engines = engines
        self._routing = routing

    def register(self, watcher: Watcher, peer: Peer) -> None:
        """Engines call nothing on the supervisor."""

    async def before_load(self, watcher: Watcher) -> None:
        """Nothing to wait for."""

    async def load(self, watcher: Watcher, peer: Peer) -> bool:
        """Build the runner; its resume regex goes to the router's stand-in."""
        config = self._config
        table = config.settings.engine_config(watcher.plugin_id, config_path=config.config_path)
        result = await peer.call(
            "load", EngineLoad(config=dict(table), config_path=str(config.config_path))
        )
        if not isinstance(result, EngineLoaded):
            return watcher.fail_load(load_error(result))
        watcher.engine = result
        self._engines.catalog.record(watcher.plugin_id, result)
        self._engines.stand_in(watcher.plugin_id).update(result.resume)
        if result.status != "ok":
            log.warning(
                "engine.not_ok", engine=watcher.plugin_id, status=result.status, issue=result.issue
            )
        return True

    async def on_ready(self, watcher: Watcher) -> None:
        """A new engine incarnation: workers refresh what they cache."""
        await self._routing.push()

    async def on_gave_up(self, watcher: Watcher, reason: str) -> None:
        """The engine is out: the router marks it so."""
        await self._routing.push()

    def on_exit(self, watcher: Watcher, incarnation: Incarnation) -> None:
        """Runs on it end by themselves (their driver sees the connection go)."""


__all__ = ["EngineKind", "load_error"]
