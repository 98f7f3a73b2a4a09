"""Config file location and errors. (Extended by the core-config work: read/write, dump_toml…)"""

from __future__ import annotations

from pathlib import Path

HOME_CONFIG_PATH = Path.home() / ".takopi" / "takopi.toml"


class ConfigError(Exception):
    """Invalid or missing configuration; the message is shown to the user as-is."""
