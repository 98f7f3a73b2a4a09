"""Observers of :class:`~takopi.runner_bridge.ExecBridgeConfig` creation.

A transport plugin hands takopi its ``Transport`` and ``Presenter`` by building an
``ExecBridgeConfig``. The transport worker watches for that so it can deliver journaled
outcomes through them on the plugin's behalf (see :mod:`takopi.worker.foreign_deliveries`);
outside a worker nobody observes and this costs one empty loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from takopi.logging import get_logger

log = get_logger(__name__)

_observers: list[Callable[[Any], None]] = []


def observe_exec_configs(observer: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``observer(cfg)`` for every ``ExecBridgeConfig`` created; returns an undo."""
    _observers.append(observer)

    def undo() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return undo


def exec_config_created(cfg: Any) -> None:
    """Tell the observers (an observer's failure is logged, never raised into the plugin)."""
    for observer in list(_observers):
        try:
            observer(cfg)
        except Exception as exc:
            log.warning("bridge_hooks.observer_failed", error=str(exc))


__all__ = ["exec_config_created", "observe_exec_configs"]
