"""Every worker's watcher, by name (``kind:id``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from takopi.supervisor.watcher import Watcher


class Workers:
    """The supervisor's watchers; engines, transports and commands alike."""

    def __init__(self) -> None:
        self._by_name: dict[str, Watcher] = {}

    def add(self, watcher: Watcher) -> Watcher:
        """Register ``watcher`` under its name."""
        self._by_name[watcher.name] = watcher
        return watcher

    def get(self, name: str) -> Watcher | None:
        """The watcher named ``kind:id``."""
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Watcher]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def of_kind(self, kind: str) -> list[Watcher]:
        """Watchers of one kind, in registration order."""
        return [w for w in self._by_name.values() if w.kind == kind]

    def resolve(self, names: list[str]) -> list[Watcher]:
        """Watchers named ``kind:id`` or ``id`` (all when empty); KeyError for an unknown one."""
        targets = []
        for name in names or list(self._by_name):
            watcher = (
                self._by_name.get(name)
                or self._by_name.get(f"engine:{name}")
                or self._by_name.get(f"transport:{name}")
                or self._by_name.get(f"command:{name}")
            )
            if watcher is None:
                raise KeyError(name)
            targets.append(watcher)
        return targets

    def find(self, name: str) -> Watcher | None:
        """A watcher by full name, else by plugin id."""
        watcher = self._by_name.get(name)
        if watcher is not None:
            return watcher
        return next((w for w in self._by_name.values() if w.plugin_id == name), None)

    def live_pids(self) -> set[int]:
        """Pids of live worker processes."""
        pids = set()
        for watcher in self._by_name.values():
            proc = watcher.process
            if proc is not None and proc.pid is not None and proc.exit is None:
                pids.add(proc.pid)
        return pids

    def describe(self) -> list[dict[str, Any]]:
        """Status rows of every worker."""
        return [w.describe() for w in self._by_name.values()]


__all__ = ["Workers"]
