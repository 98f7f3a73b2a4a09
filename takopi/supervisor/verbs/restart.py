"""``restart [names] [--force]``: restart some or all workers."""

from __future__ import annotations

from typing import Any

from takopi.supervisor.control import ControlError


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Restart the named workers (all when ``names`` is empty)."""
    names = args.get("names") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ControlError("names must be a list of worker names")
    force = args.get("force", False)
    if not isinstance(force, bool):
        raise ControlError("force must be a boolean")
    try:
        restarted = await supervisor.restart_workers(names, force=force)
    except KeyError as exc:
        raise ControlError(f"unknown worker {exc.args[0]!r}") from None
    return {"restarted": restarted}
