"""``status``: supervisor state and every worker's state, pid, restarts and last error."""

from __future__ import annotations

from typing import Any


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Return the supervisor's status snapshot."""
    return dict(supervisor.status())
