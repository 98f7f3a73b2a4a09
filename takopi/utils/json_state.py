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
        raw = state_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("state.unreadable", path=str(state_path), error=str(exc))
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        _quarantine(state_path, f"not UTF-8: {exc}")
        return None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
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
    try:
        data_bytes = text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate (JSON "\ud800" escapes decode to one) has no UTF-8 form: write
        # \u escapes instead, which read back exactly, rather than fail every later save
        text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
        data_bytes = text.encode("ascii")
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_name(state_path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, state_path)
    except BaseException:
        # e.g. a full disk: the state file stays as it was, no half-written .tmp is left
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


__all__ = ["STATE_VERSION", "file_signature", "read_json_state", "write_json_state"]
