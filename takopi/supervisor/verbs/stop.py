"""``stop``: graceful shutdown, same as SIGTERM."""

from __future__ import annotations

from typing import Any


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Ask the supervisor to stop; the answer is sent before it does."""
    supervisor.request_stop()
    return {"stopping": True}
