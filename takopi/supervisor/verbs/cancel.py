"""``cancel <run_id>``: cancel one run (the user still gets its terminal reply)."""

from __future__ import annotations

from typing import Any

from takopi.supervisor.control import ControlError


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Cancel the run with ``run_id``."""
    run_id = args.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise ControlError("run_id is required")
    return {"cancelled": bool(supervisor.cancel_run(run_id))}
