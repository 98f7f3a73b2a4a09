"""Atomic JSON state files (``version: 1``, indent 2, sorted keys, ``<file>.tmp`` + replace).

A corrupt file (bad JSON, not an object, or another version) is logged as a warning, kept
aside as ``<file>.corrupt`` and treated as empty, so a bad state file never stops takopi.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from takopi.logging import get_logger

STATE_VERSION = 1

log = get_logger(__name__)


def file_signature(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_mtime_ns, st_size)`` of ``path``, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _quarantine(path: Path, reason: str) -> None:
    backup = path.with_name(path.name + ".corrupt")
    log.warning("state.corrupt", path=str(path), reason=reason, backup=str(backup))
    with contextlib.suppress(OSError):
        os.replace(path, backup)


def read_json_state(
    path: str | os.PathLike[str], *, version: int = STATE_VERSION
) -> dict[str, Any] | None:
    """The state object at ``path`` (with its ``version`` key), or None if missing/corrupt."""
    state_path = Path(path)
    try:
        raw = state_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("state.unreadable", path=str(state_path), error=str(exc))
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        _quarantine(state_path, f"invalid JSON: {exc}")
        return None
    if not isinstance(data, dict):
        _quarantine(state_path, "not a JSON object")
        return None
    if data.get("version") != version:
        _quarantine(state_path, f"version {data.get('version')!r} != {version}")
        return None
    return data


def write_json_state(
    path: str | os.PathLike[str], data: dict[str, Any], *, version: int = STATE_VERSION
) -> None:
    """Write ``data`` (``version`` set) atomically: ``<file>.tmp``, fsync, ``os.replace``."""
    state_path = Path(path)
    payload = {**data, "version": version}
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_name(state_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, state_path)


__all__ = ["STATE_VERSION", "file_signature", "read_json_state", "write_json_state"]
