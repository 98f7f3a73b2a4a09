"""Command worker: hosts one ``CommandBackend`` on ONE persistent asyncio loop.

Plugins keep background tasks that use ``ctx.executor`` after ``handle`` returns, so the loop
(a dedicated thread, not the RPC loop, so sync ``ctx.runtime`` methods may block on RPC) lives
as long as the worker. ``ctx.executor`` is a reference proxy to the executor object of the
transport worker that dispatched the command (relayed by the supervisor); ``ctx.runtime`` is a
:class:`~takopi.worker.proxies.RuntimeProxy`.

Supervisor → worker methods:

- ``load(plugin_config, config_path)`` → ``{"ok": True, "description"}`` or ``{"ok": False,
  "error", "exit_code"}``
- ``handle(ctx)`` (a dict of ``CommandContext`` fields) → ``CommandResult | None``
- notification ``runtime.changed(snapshot)``
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.worker.codes import EXIT_PLUGIN_FAILED
from takopi.worker.proxies import RuntimeProxy, Snapshot

log = get_logger(__name__)


class CommandHost:
    """Loads the command plugin and runs its handler on a persistent loop thread."""

    kind = "command"

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.backend: Any = None
        self.exit_code: int | None = None
        self.snapshot = Snapshot({})
        self.peer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: RuntimeProxy | None = None

    def register(self, peer: Any) -> None:
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

    async def load(self, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
        """Import the command plugin."""
        from takopi.commands import get_command

        self.snapshot.update(snapshot or {})
        try:
            self.backend = get_command(self.plugin_id, required=True)
        except ConfigError as exc:
            log.error("worker.failed", command=self.plugin_id, error=str(exc))
            self.exit_code = EXIT_PLUGIN_FAILED
            return {"ok": False, "error": str(exc), "exit_code": EXIT_PLUGIN_FAILED}
        self._runtime = RuntimeProxy(self.peer, self.snapshot)
        self._plugin_loop()
        from takopi.worker.memory import trim_memory

        trim_memory()
        return {"ok": True, "description": str(getattr(self.backend, "description", "") or "")}

    async def runtime_changed(self, snapshot: dict[str, Any]) -> None:
        """The supervisor's engines/config changed."""
        self.snapshot.update(snapshot)

    async def handle(self, ctx: dict[str, Any]) -> Any:
        """Build a ``CommandContext`` and run ``backend.handle`` on the persistent loop."""
        from takopi.commands import CommandContext

        if self.backend is None:
            raise RuntimeError(f"command {self.plugin_id!r} is not loaded")
        config_path = ctx.get("config_path")
        context = CommandContext(
            command=str(ctx.get("command") or self.plugin_id),
            text=str(ctx.get("text") or ""),
            args_text=str(ctx.get("args_text") or ""),
            args=tuple(ctx.get("args") or ()),
            message=ctx["message"],
            reply_to=ctx.get("reply_to"),
            reply_text=ctx.get("reply_text"),
            config_path=Path(config_path) if config_path else None,
            plugin_config=dict(ctx.get("plugin_config") or {}),
            runtime=self._runtime,
            executor=ctx["executor"],
        )
        future = asyncio.run_coroutine_threadsafe(self.backend.handle(context), self._plugin_loop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise


__all__ = ["CommandHost"]
