"""Which engines exist, decided once before the transport starts (behavior.md §1.3).

Every installed engine is load-checked by the engine probe; the answers decide:

- ``load_error`` (the plugin cannot be imported or its runner cannot be built): not an engine
  at all — left out of the router, the startup message, the menu and ``/agent set`` (a command
  plugin with the same id dispatches), with a ``setup.warning`` log;
- ``missing_cli``: an engine the router knows but cannot run (no worker);
- ``ok`` / ``bad_config``: an engine that can run; its worker starts on first use.

The built-in ``demo`` engine is offered only when no real engine can run (or it was chosen
as the default engine), and never when a ``[projects.demo]`` alias is configured.
Later loads of an engine's worker replace what the probe said about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio

from takopi.protocol import EngineLoaded, LoadFailed
from takopi.runtime_loader import DEMO_ENGINE, demo_engine_wanted
from takopi.supervisor.probe import ProbeResult

RUNNABLE = ("ok", "bad_config")


class EngineCatalog:
    """The engines' load answers and the ids the router offers."""

    def __init__(self) -> None:
        self.results: dict[str, ProbeResult] = {}
        self.ids: tuple[str, ...] = ()
        """The engines the router offers (sorted): everything that loaded, minus an unwanted
        ``demo``."""
        self.left_out: dict[str, str] = {}
        """Engines that loaded but are not offered, and why."""
        self.decided = anyio.Event()
        """Set by the supervisor once the first decision is made and accepted (the transport
        waits for it)."""

    def decide(
        self,
        results: Mapping[str, ProbeResult],
        *,
        chosen_default: str | None,
        project_aliases: Iterable[str],
    ) -> None:
        """Take the probe's answers; work out which engines the router offers."""
        self.results = dict(results)
        loaded = sorted(e for e, r in self.results.items() if isinstance(r, EngineLoaded))
        real_runnable = any(self.runnable(engine) for engine in loaded if engine != DEMO_ENGINE)
        self.left_out = {}
        aliases = [a.strip().lower() for a in project_aliases]
        if DEMO_ENGINE in loaded and not demo_engine_wanted(
            real_engine_available=real_runnable,
            chosen_default=chosen_default,
            project_aliases=aliases,
        ):
            self.left_out[DEMO_ENGINE] = (
                "a [projects.demo] alias is configured"
                if DEMO_ENGINE in aliases
                else "a real engine is available"
            )
        self.ids = tuple(e for e in loaded if e not in self.left_out)

    def state(self) -> tuple[dict[str, ProbeResult], tuple[str, ...], dict[str, str]]:
        """What :meth:`restore` puts back (a reload that is rejected)."""
        return dict(self.results), self.ids, dict(self.left_out)

    def restore(
        self, state: tuple[dict[str, ProbeResult], tuple[str, ...], dict[str, str]]
    ) -> None:
        """Undo a :meth:`decide` (see :meth:`state`)."""
        self.results, self.ids, self.left_out = dict(state[0]), state[1], dict(state[2])

    def record(self, engine: str, loaded: EngineLoaded) -> None:
        """An engine worker loaded: its answer is the latest word on the engine."""
        self.results[engine] = loaded

    def loaded(self, engine: str) -> EngineLoaded | None:
        """What the last load of ``engine`` reported, if it loaded."""
        result = self.results.get(engine)
        return result if isinstance(result, EngineLoaded) else None

    def runnable(self, engine: str) -> bool:
        """``engine`` loaded with status ``ok`` or ``bad_config`` (it may get a worker)."""
        loaded = self.loaded(engine)
        return loaded is not None and loaded.status in RUNNABLE

    def load_error(self, engine: str) -> str | None:
        """Why ``engine`` could not be loaded (None if it could)."""
        result = self.results.get(engine)
        return result.error if isinstance(result, LoadFailed) else None

    def failures(self) -> dict[str, str]:
        """Engines that are not engines: id → load error."""
        return {e: r.error for e, r in sorted(self.results.items()) if isinstance(r, LoadFailed)}

    def describe(self) -> list[dict[str, Any]]:
        """``takopictl status``'s engines section (every installed engine)."""
        rows = []
        for engine, result in sorted(self.results.items()):
            status: str
            issue: str | None
            if isinstance(result, LoadFailed):
                status, issue = "load_error", result.error
            else:
                status, issue = result.status, result.issue
            rows.append(
                {
                    "id": engine,
                    "status": status,
                    "issue": issue or self.left_out.get(engine),
                    "offered": engine in self.ids,
                }
            )
        return rows


__all__ = ["RUNNABLE", "EngineCatalog"]
