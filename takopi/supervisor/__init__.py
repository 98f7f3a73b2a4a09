"""The supervisor: one process owning config, routing, the run registry, the delivery journal
and every plugin worker (see ARCHITECTURE.md §1 to §3).

Entry point: :func:`run_supervisor` with :class:`SupervisorOptions` (imported lazily so that
``takopi.supervisor.policy`` etc. stay cheap to import).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SupervisorOptions", "run_supervisor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from takopi.supervisor import arbiter

        return getattr(arbiter, name)
    raise AttributeError(name)
