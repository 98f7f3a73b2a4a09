"""Deciding which engines exist: at start-up, before the transport builds its startup message,
and again on reload. Every installed engine is load-checked by the engine probe (one per
interpreter); the :class:`~takopi.supervisor.engine_catalog.EngineCatalog` decides from the
answers; engines that can run get a watcher (their worker starts on first use).

As in the reference (behavior.md §1.3), a default engine whose plugin cannot be loaded, or whose
config is invalid, is fatal; other problems are ``setup.warning`` log lines.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from takopi.config import CONFIG_PATH_ENV, ConfigError
from takopi.logging import get_logger
from takopi.protocol import EngineLoaded, LoadFailed
from takopi.supervisor.probe import PLUGIN_FAILED

if TYPE_CHECKING:
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.engine_pool import EnginePool
    from takopi.supervisor.probe import EngineProber, ProbeResult
    from takopi.supervisor.watcher import Watcher

log = get_logger(__name__)


class EngineSetup:
    """Probes the engines and applies the catalog's decision."""

    def __init__(
        self,
        *,
        config: SupervisorConfig,
        engines: EnginePool,
        prober: EngineProber,
        new_watcher: Callable[[str], Watcher],
    ) -> None:
        self._config = config
        self._engines = engines
        self._prober = prober
        self._new_watcher = new_watcher

    def chosen_default(self) -> str:
        """The default engine asked for (``--engine``-style override, else the config)."""
        options, settings = self._config.options, self._config.settings
        return str(options.default_engine_override or settings.default_engine)

    async def probe(self) -> dict[str, ProbeResult]:
        """Every installed (and allowed) engine's load answer."""
        config = self._config
        groups: dict[str | None, dict[str, dict[str, Any]]] = {}
        bad_tables: dict[str, str] = {}
        for engine in config.engine_ids():
            try:
                table = config.settings.engine_config(engine, config_path=config.config_path)
            except ConfigError as exc:  # not a table: built with defaults, like the reference
                table, bad_tables[engine] = {}, str(exc)
            groups.setdefault(config.python_for(engine), {})[engine] = table
        results: dict[str, ProbeResult] = {}
        # What a third-party engine worker would get: everything but transport secrets.
        env = config.env_policy(os.environ).command("probe")
        env[CONFIG_PATH_ENV] = str(Path(config.config_path).absolute())

        async def probe_group(python: str | None, tables: dict[str, dict[str, Any]]) -> None:
            try:
                found = await self._prober.probe(
                    tables, python=python, config_path=config.config_path, env=env
                )
            except Exception as exc:  # e.g. a table the wire cannot carry, no fds left
                log.exception("engine.probe_error", engines=sorted(tables), error=str(exc))
                error = f"cannot load-check the engine: {type(exc).__name__}: {exc}"
                found = {engine: LoadFailed(error, PLUGIN_FAILED) for engine in tables}
            results.update(found)

        async with anyio.create_task_group() as tg:
            for python, tables in groups.items():
                tg.start_soon(probe_group, python, tables)
        for engine, issue in bad_tables.items():
            result = results.get(engine)
            if isinstance(result, EngineLoaded) and result.status == "ok":
                results[engine] = dataclasses.replace(result, status="bad_config", issue=issue)
        return results

    async def decide(self) -> None:
        """Probe and decide; ``ConfigError`` when the default engine cannot be used (the
        catalog keeps the new answers: a caller that rejects them restores its state)."""
        results = await self.probe()
        settings = self._config.settings
        catalog = self._engines.catalog
        catalog.decide(
            results,
            chosen_default=self.chosen_default(),
            project_aliases=settings.project_aliases(),
        )
        for engine, error in catalog.failures().items():
            log.warning("setup.warning", engine=engine, status="load_error", issue=error)
        self._check_default()  # before any side effect: a rejected reload changes nothing
        for engine in catalog.ids:
            loaded = catalog.loaded(engine)
            assert loaded is not None
            self._engines.stand_in(engine).update(loaded.resume)
            if loaded.status != "ok":
                log.warning(
                    "setup.warning", engine=engine, status=loaded.status, issue=loaded.issue
                )
            if catalog.runnable(engine) and self._engines.watcher(engine) is None:
                self._new_watcher(engine)
        log.info(
            "engines.decided",
            engines=list(catalog.ids),
            runnable=[e for e in catalog.ids if catalog.runnable(e)],
            left_out=sorted(catalog.left_out),
            failed=sorted(catalog.failures()),
        )

    def _check_default(self) -> None:
        engine = self.chosen_default()
        catalog = self._engines.catalog
        error = catalog.load_error(engine)
        if error is not None:
            if not error.startswith("Failed to load engine"):
                error = f"Failed to load engine {engine!r}: {error}"
            raise ConfigError(error)
        loaded = catalog.loaded(engine)
        if loaded is not None and loaded.status == "bad_config" and engine in catalog.ids:
            raise ConfigError(f"Default engine {engine!r} unavailable: {loaded.issue}")


__all__ = ["EngineSetup"]
