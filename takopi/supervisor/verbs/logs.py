"""``logs <name> [--lines N]``: a worker's recent output."""

from __future__ import annotations

from typing import Any

from takopi.supervisor.control import ControlError


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Return the last ``lines`` lines a worker wrote to stdout/stderr."""
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise ControlError("name is required (a worker name from status, or 'supervisor')")
    lines = args.get("lines", 100)
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
        raise ControlError("lines must be a non-negative integer")
    try:
        return dict(supervisor.worker_logs(name, min(lines, 100_000)))
    except KeyError:
        raise ControlError(f"unknown worker {name!r}") from None
