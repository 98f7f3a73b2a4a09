"""The published plugins the compat suite installs (keep in sync with
``scripts/install-compat-plugins.sh``) and where to find their venvs."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install-compat-plugins.sh"


@dataclass(frozen=True)
class Pin:
    distribution: str
    version: str
    venv: str  # "py311" or "py313"
    kind: str  # "engine" or "command"
    plugin_id: str


PINS = (
    Pin("takopi-scripts", "0.1.2", "py311", "command", "run"),
    Pin("takopi-cron", "0.1.0", "py313", "command", "cron"),
    Pin("takopi-engine-kimi", "0.1.0", "py313", "engine", "kimi"),
    Pin("takopi-engine-qoder", "0.2.0", "py313", "engine", "qoder"),
    Pin("takopi-engine-cursor", "0.2.0", "py313", "engine", "cursor"),
)


def compat_dir() -> Path:
    """The installed compat venvs (``$TAKOPI_COMPAT_DIR`` or the install script's cache dir).

    Raises ``RuntimeError`` with the fix when they are not installed: tests never install.
    """
    env = os.environ.get("TAKOPI_COMPAT_DIR")
    if env:
        return Path(env)
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), "--check"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise RuntimeError(
            "compat plugin venvs are not installed; run scripts/install-compat-plugins.sh "
            f"(network needed once): {proc.stderr.strip()}"
        )
    return Path(proc.stdout.strip())


def venv_python(base: Path, venv: str) -> Path:
    """The interpreter of one compat venv."""
    return base / venv / "bin" / "python"
