"""The supervisor's routing state: the ``TransportRuntime`` it serves (router over engine
stand-ins, projects, plugin tables) and the :class:`~takopi.protocol.RuntimeSnapshot` that
transport and command workers cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from takopi.logging import get_logger
from takopi.protocol import ResumeCodecInfo, RuntimeSnapshot
from takopi.supervisor.watcher import WorkerState

if TYPE_CHECKING:
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.engine_pool import EnginePool
    from takopi.supervisor.workers import Workers
    from takopi.transport_runtime import TransportRuntime

log = get_logger(__name__)


class Routing:
    """Builds the runtime from the settings and the engines' state; pushes snapshots."""

    def __init__(self, config: SupervisorConfig, engines: EnginePool, workers: Workers) -> None:
        self._config = config
        self._engines = engines
        self._workers = workers
        self._runtime: TransportRuntime | None = None
        self.default_engine = ""

    @property
    def runtime(self) -> TransportRuntime:
        """The runtime (built by :meth:`build` once the settings are loaded)."""
        if self._runtime is None:
            raise RuntimeError("the runtime is not built yet")
        return self._runtime

    def build(self) -> None:
        """(Re)build the router and the runtime from the settings and engine states."""
        from takopi.router import AutoRouter, RunnerEntry
        from takopi.runtime_loader import resolve_default_engine
        from takopi.transport_runtime import TransportRuntime

        config = self._config
        options = config.options
        settings = config.settings
        engine_ids = self._engines.ids()
        self.default_engine = (
            resolve_default_engine(
                override=options.default_engine_override,
                settings=settings,
                engine_ids=engine_ids,
            )
            if engine_ids
            else (options.default_engine_override or settings.default_engine or "codex")
        )
        catalog = self._engines.catalog
        entries = []
        for engine in engine_ids:
            watcher = self._engines.watcher(engine)
            loaded = catalog.loaded(engine)
            status, issue = "ok", None
            if watcher is not None and watcher.state.gave_up:
                # It loaded when probed, but its worker keeps failing now.
                status, issue = "load_error", watcher.last_error or watcher.policy.last_error
            elif loaded is not None:
                status, issue = loaded.status, loaded.issue
            entries.append(
                RunnerEntry(
                    engine=engine,
                    runner=self._engines.stand_in(engine),
                    status=status,  # type: ignore[arg-type]
                    issue=issue,
                )
            )
        router = AutoRouter(entries, default_engine=self.default_engine)
        projects = settings.to_projects_config(
            config_path=config.config_path, engine_ids=engine_ids
        )
        kwargs: dict[str, Any] = dict(
            router=router,
            projects=projects,
            allowlist=settings.plugins_allowlist(),
            config_path=config.config_path,
            plugin_configs=settings.plugin_configs(),
            watch_config=bool(settings.watch_config),
        )
        if self._runtime is None:
            self._runtime = TransportRuntime(**kwargs)
        else:
            self._runtime.update(**kwargs)

    def snapshot(self) -> RuntimeSnapshot:
        """What workers cache: engines' resume codecs and plain runtime attributes."""
        engines = {}
        for engine in self._engines.ids():
            loaded = self._engines.catalog.loaded(engine)
            if loaded is not None:
                engines[engine] = loaded.resume or ResumeCodecInfo()
        runtime = self._runtime
        return RuntimeSnapshot(
            default_engine=self.default_engine,
            engine_ids=tuple(runtime.engine_ids) if runtime is not None else (),
            allowlist=tuple(runtime.allowlist)
            if runtime is not None and runtime.allowlist
            else None,
            config_path=str(self._config.config_path),
            watch_config=bool(runtime.watch_config) if runtime is not None else False,
            engines=engines,
        )

    async def push(self) -> None:
        """Rebuild, then send the snapshot to every ready transport and command worker."""
        self.build()
        snapshot = self.snapshot()
        for watcher in self._workers:
            peer = watcher.peer
            if watcher.kind == "engine" or watcher.state is not WorkerState.READY or peer is None:
                continue
            try:
                await peer.notify("runtime.changed", snapshot)
            except Exception as exc:
                log.debug("supervisor.snapshot_push_failed", worker=watcher.name, error=str(exc))


__all__ = ["Routing"]
