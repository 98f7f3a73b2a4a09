"""Per-run engine overrides (``/model``, ``/reasoning``) carried in a contextvar.

Transports wrap a run in ``with apply_run_options(EngineRunOptions(model=..., reasoning=...))``;
runners read :func:`get_run_options` while building their argv. The worker host re-applies the
options it receives over RPC so the contextvar is set inside the engine worker too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineRunOptions:
    """Model / reasoning-effort overrides for one run (``None`` = engine default)."""

    model: str | None = None
    reasoning: str | None = None


_run_options: ContextVar[EngineRunOptions | None] = ContextVar(
    "takopi_engine_run_options", default=None
)


def get_run_options() -> EngineRunOptions | None:
    """The overrides of the current run, or ``None`` when none were applied."""
    return _run_options.get()


@contextmanager
def apply_run_options(options: EngineRunOptions | None) -> Iterator[None]:
    """Make ``options`` visible to :func:`get_run_options` inside the block."""
    token = _run_options.set(options)
    try:
        yield
    finally:
        _run_options.reset(token)


__all__ = ["EngineRunOptions", "apply_run_options", "get_run_options"]
