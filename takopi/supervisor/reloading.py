"""Reloading the config (``takopictl reload``, SIGHUP, ``watch_config = true``).

A reload re-reads ``takopi.toml``, decides the engines again (their CLIs and tables may have
changed), rebuilds the routing and pushes it to the workers, and restarts the engine workers
whose table changed once their runs are done. Transport changes are reported, not applied. An
invalid config (or a default engine that can no longer be used) keeps everything as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.supervisor.restart import RestartRefused

if TYPE_CHECKING:
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.engine_pool import EnginePool
    from takopi.supervisor.engine_setup import EngineSetup
    from takopi.supervisor.notify import Notifier
    from takopi.supervisor.options import SupervisorOptions
    from takopi.supervisor.routing import Routing
    from takopi.supervisor.workers import Workers

log = get_logger(__name__)


class ReloadHost(Protocol):
    """What a reload changes or uses in the supervisor."""

    state: str
    options: SupervisorOptions
    notifier: Notifier
    workers: Workers
    engines: EnginePool

    def spawn_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None: ...

    async def restart(
        self, names: list[str], *, force: bool, wait_timeout: float = 600.0
    ) -> dict[str, Any]: ...


class Reloader:
    """Applies a re-read config."""

    def __init__(
        self,
        *,
        host: ReloadHost,
        config: SupervisorConfig,
        routing: Routing,
        engine_setup: EngineSetup,
    ) -> None:
        self._host = host
        self._config = config
        self._routing = routing
        self._engine_setup = engine_setup
        self._lock = anyio.Lock()

    async def reload(self) -> dict[str, Any]:
        """Re-read the config; apply routing/projects/plugin tables, restart changed engines.
        One reload at a time (SIGHUP, ``takopictl reload`` and the file watcher may overlap:
        a rejected one restores the state it found, which must not be another's)."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        from takopi.supervisor.config_check import load_settings_view

        host = self._host
        host.state = "reloading" if host.state == "running" else host.state
        host.notifier.reloading()
        try:
            settings = await anyio.to_thread.run_sync(load_settings_view, self._config.config_path)
        except (ConfigError, OSError) as exc:
            log.warning("config.reload.failed", error=str(exc))
            self._reloaded()
            host.notifier.ready("reload failed; previous config kept")
            return {"reloaded": False, "error": str(exc), "restart_required": []}
        old = self._config.replace_settings(settings)
        saved = host.engines.catalog.state()
        try:
            restart_required = self._transport_changes(settings, old)
            changed = self._changed_engines(settings, old)
            await self._engine_setup.decide()
            await self._routing.push()
        except Exception as exc:  # ConfigError, or a bug: either way the old config stays
            if not isinstance(exc, ConfigError):
                log.exception("config.reload.crashed", error=str(exc))
            self._config.replace_settings(old)
            host.engines.catalog.restore(saved)
            self._routing.build()
            self._reloaded()
            host.notifier.ready("reload rejected; previous config kept")
            return {"reloaded": False, "error": str(exc), "restart_required": []}
        if changed:
            # Drained in the background: runs in flight finish on the old config.
            host.spawn_task(self._restart_after_reload, changed)
        self._reloaded()
        host.notifier.ready("reloaded")
        return {
            "reloaded": True,
            "error": None,
            "restart_required": restart_required,
            "restarted": changed,
        }

    def _transport_changes(self, settings: Any, old: Any) -> list[str]:
        transport_id = self._config.transport_id
        path = self._config.config_path
        if settings.transport != old.transport or (
            settings.transport_config(transport_id, config_path=path)
            != old.transport_config(transport_id, config_path=path)
        ):
            return [f"transport:{transport_id}"]
        return []

    def _changed_engines(self, settings: Any, old: Any) -> list[str]:
        changed = []
        for watcher in self._host.workers.of_kind("engine"):
            if not watcher.running:
                continue  # not started or retired: its next start reads the new table
            try:
                if settings.engine_config(watcher.plugin_id) != old.engine_config(
                    watcher.plugin_id
                ):
                    changed.append(watcher.name)
            except ConfigError:
                changed.append(watcher.name)
        return changed

    def _reloaded(self) -> None:
        host = self._host
        host.state = "running" if host.state == "reloading" else host.state

    async def _restart_after_reload(self, names: list[str]) -> None:
        host = self._host
        try:
            await host.restart(names, force=False, wait_timeout=host.options.reload_drain)
        except RestartRefused as exc:
            log.warning("config.reload.restart_skipped", workers=names, error=str(exc))

    async def watch_config(self, poll_interval: float = 1.0) -> None:
        """``watch_config = true``: reload when the config file changes (mtime/size), like
        the reference's hot reload. Transport changes are reported, not applied."""
        from takopi.utils.json_state import file_signature

        last = file_signature(self._config.config_path)
        reported_failure: tuple[int, int] | None = None
        while True:
            await anyio.sleep(poll_interval)
            current = file_signature(self._config.config_path)
            if current == last or current is None:
                continue
            last = current
            if not self._config.settings.watch_config:
                continue
            result = await self.reload()
            if result.get("reloaded"):
                reported_failure = None
                log.info(
                    "config.reload.applied",
                    restart_required=result.get("restart_required") or [],
                    restarted=result.get("restarted") or [],
                )
            elif reported_failure != current:
                reported_failure = current  # once per file state, not every poll
                log.warning("config.reload.rejected", error=result.get("error"))


__all__ = ["ReloadHost", "Reloader"]
