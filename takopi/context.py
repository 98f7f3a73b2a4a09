"""Run context: which project and branch a run works in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunContext:
    """Project alias and optional branch (worktree) for a run."""

    project: str | None = None
    branch: str | None = None


__all__ = ["RunContext"]
