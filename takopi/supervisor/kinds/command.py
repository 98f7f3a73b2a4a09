"""Command workers: one per command plugin, started on first use. Transport workers reach them
through the supervisor (``command.describe`` / ``command.handle``), which relays the
invocation — and the executor reference inside it — to the command's worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from takopi.protocol import CommandDescription, CommandInvocation, CommandLoad, CommandLoaded
from takopi.supervisor.kinds.engine import load_error
from takopi.supervisor.options import WORKER_STOP_TIMEOUT
from takopi.supervisor.watcher import WorkerState

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.routing import Routing
    from takopi.supervisor.runtime_service import RuntimeService
    from takopi.supervisor.watcher import Incarnation, Watcher
    from takopi.supervisor.workers import Workers


class CommandKind:
    """A command plugin's worker: gets the runtime proxy, runs ``handle``."""

    name = "command"
    stop_timeout = WORKER_STOP_TIMEOUT
    inherit_stdio = False

    def __init__(self, routing: Routing, runtime_service: RuntimeService) -> None:
        self._routing = routing
        self._runtime_service = runtime_service

    def register(self, watcher: Watcher, peer: Peer) -> None:
        """Commands use ``ctx.runtime``: serve the runtime methods."""
        self._runtime_service.register(peer, transport=None)

    async def before_load(self, watcher: Watcher) -> None:
        """Nothing to wait for."""

    async def load(self, watcher: Watcher, peer: Peer) -> bool:
        """Import the command plugin."""
        result = await peer.call("load", CommandLoad(snapshot=self._routing.snapshot()))
        if not isinstance(result, CommandLoaded):
            return watcher.fail_load(load_error(result))
        watcher.description = result.description
        return True

    async def on_ready(self, watcher: Watcher) -> None:
        """Nothing else depends on a command worker."""

    async def on_gave_up(self, watcher: Watcher, reason: str) -> None:
        """Its next invocation reports the reason."""

    def on_exit(self, watcher: Watcher, incarnation: Incarnation) -> None:
        """Restarted per policy like any worker."""


class CommandRelay:
    """``command.describe`` / ``command.handle`` for transport workers."""

    def __init__(
        self,
        config: SupervisorConfig,
        workers: Workers,
        new_watcher: Callable[[str], Watcher],
    ) -> None:
        self._config = config
        self._workers = workers
        self._new_watcher = new_watcher

    async def _watcher(self, command_id: str) -> Watcher | None:
        """The command's watcher, started on first use and waited for (bounded)."""
        watcher = self._workers.get(f"command:{command_id}")
        if watcher is None:
            if not self._config.knows_command(command_id):
                return None
            watcher = self._new_watcher(command_id)
            watcher.start()
        with anyio.move_on_after(self._config.options.load_timeout):
            await watcher.settled.wait()
        return watcher

    async def describe(self, command_id: str) -> CommandDescription:
        """Start the command worker on first use; its description."""
        watcher = await self._watcher(str(command_id))
        if watcher is None:
            return CommandDescription(error=f"Unknown command {command_id!r}.")
        if watcher.state is not WorkerState.READY:
            return CommandDescription(
                error=f"command {command_id!r} is unavailable: {watcher.issue()}"
            )
        return CommandDescription(description=watcher.description)

    async def handle(self, command_id: str, invocation: CommandInvocation) -> Any:
        """Relay one command invocation to its worker (executor refs travel through us)."""
        watcher = await self._watcher(str(command_id))
        peer = watcher.peer if watcher is not None else None
        if watcher is None or watcher.state is not WorkerState.READY or peer is None:
            raise RuntimeError(f"command {command_id!r} is unavailable")
        return await peer.call("handle", invocation)


__all__ = ["CommandKind", "CommandRelay"]
