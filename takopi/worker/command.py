"""Command worker: hosts one ``CommandBackend`` on ONE persistent asyncio loop.

Plugins keep background tasks that use ``ctx.executor`` after ``handle`` returns, so the loop
(a dedicated thread, not the RPC loop, so sync ``ctx.runtime`` methods may block on RPC) lives
as long as the worker. ``ctx.executor`` is a reference proxy to the executor object of the
transport worker that dispatched the command (relayed by the supervisor); ``ctx.runtime`` is a
:class:`~takopi.worker.proxies.RuntimeProxy`.

Supervisor → worker methods (messages in :mod:`takopi.protocol`):

- ``load(CommandLoad)`` → ``CommandLoaded`` or ``LoadFailed``
- ``handle(CommandInvocation)`` → ``CommandResult | None``
- notification ``runtime.changed(RuntimeSnapshot)``
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.protocol import (
    CommandInvocation,
    CommandLoad,
    CommandLoaded,
    LoadFailed,
    RuntimeSnapshot,
)
from takopi.worker.codes import EXIT_PLUGIN_FAILED
from takopi.worker.proxies import RuntimeProxy, Snapshot

if TYPE_CHECKING:
    from takopi.rpc import Peer

log = get_logger(__name__)


class CommandHost:
    """Loads the command plugin and runs its handler on a persistent loop thread."""

    kind = "command"

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.backend: Any = None
        self.exit_code: int | None = None
        self.snapshot = Snapshot(RuntimeSnapshot())
        self.peer: Peer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: RuntimeProxy | None = None

    def register(self, peer: Peer) -> None:
        """Install this host's RPC handlers on ``peer``."""
        self.peer = peer
        peer.register("load", self.load)
        peer.register("handle", self.handle)
        peer.register("runtime.changed", self.runtime_changed)

    def _plugin_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name=f"command-{self.plugin_id}", daemon=True).start()
            ready.wait()
            self._loop = loop
        return self._loop

    async def load(self, request: CommandLoad) -> CommandLoaded | LoadFailed:
        """Import the command plugin."""
        from takopi.commands import get_command

        assert self.peer is not None
        self.snapshot.update(request.snapshot)
        try:
            self.backend = get_command(self.plugin_id, required=True)
        except ConfigError as exc:
            log.error("worker.failed", command=self.plugin_id, error=str(exc))
            self.exit_code = EXIT_PLUGIN_FAILED
            return LoadFailed(error=str(exc), exit_code=EXIT_PLUGIN_FAILED)
        self._runtime = RuntimeProxy(self.peer, self.snapshot)
        self._plugin_loop()
        from takopi.utils.memory import trim_memory

        trim_memory()
        return CommandLoaded(description=str(getattr(self.backend, "description", "") or ""))

    async def runtime_changed(self, snapshot: RuntimeSnapshot) -> None:
        """The supervisor's engines/config changed."""
        self.snapshot.update(snapshot)

    async def handle(self, invocation: CommandInvocation) -> Any:
        """Build a ``CommandContext`` and run ``backend.handle`` on the persistent loop."""
        from takopi.commands import CommandContext

        if self.backend is None:
            raise RuntimeError(f"command {self.plugin_id!r} is not loaded")
        config_path = invocation.config_path
        context = CommandContext(
            command=invocation.command or self.plugin_id,
            text=invocation.text,
            args_text=invocation.args_text,
            args=tuple(invocation.args),
            message=invocation.message,
            reply_to=invocation.reply_to,
            reply_text=invocation.reply_text,
            config_path=Path(config_path) if config_path else None,
            plugin_config=dict(invocation.plugin_config),
            runtime=self._runtime,
            executor=invocation.executor,
        )
        future = asyncio.run_coroutine_threadsafe(self.backend.handle(context), self._plugin_loop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


__all__ = ["CommandHost"]
