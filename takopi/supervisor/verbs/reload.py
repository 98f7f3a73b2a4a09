"""``reload``: re-read the config (same as SIGHUP)."""

from __future__ import annotations

from typing import Any


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Reload the config; reports whether it applied and what needs a restart."""
    return dict(await supervisor.reload())
