"""What ``load_settings()`` with no argument sees inside a worker (TAKOPI_CONFIG_PATH)."""

from __future__ import annotations

import os


def settings_probe() -> str:
    """``settings-from <path> transport=<id> pid=<pid>``, or ``settings-error <why>``."""
    from takopi.settings import load_settings

    try:
        settings, path = load_settings()
    except Exception as exc:
        return f"settings-error {type(exc).__name__}: {exc}"
    return f"settings-from {path} transport={settings.transport} pid={os.getpid()}"
