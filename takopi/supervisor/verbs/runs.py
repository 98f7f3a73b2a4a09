"""``runs``: runs in flight and outcomes still owed to users."""

from __future__ import annotations

from typing import Any


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """List runs and pending deliveries."""
    return dict(supervisor.runs_info())
