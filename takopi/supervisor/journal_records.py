"""Reading the delivery journal's lines back: strict validation of each record, so that a
corrupt or hand-edited line is reported and skipped instead of half-applied.

A record that passes :func:`parse_record` has the shape documented in
:mod:`takopi.supervisor.journal` with the right types; :func:`serialize` is its one encoding.
"""

from __future__ import annotations

import json
import math
from typing import Any

from takopi.protocol.delivery import STATUSES

OPS = ("begin", "started", "outcome", "delivered", "answered")
_ORIGIN_KEYS = (
    "channel_id",
    "message_id",
    "thread_id",
    "progress_message_id",
    "context_line",
)


class BadRecord(ValueError):
    """A journal line that is not a valid record (the message says why)."""


def serialize(record: dict[str, Any]) -> bytes:
    """One journal line (compact JSON + newline)."""
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def _opt_str(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRecord(f"{key} must be a string or null, not {type(value).__name__}")


def _origin(value: Any) -> dict[str, Any]:
    """A begin record's origin: the object the writer always writes (never null: a null
    there is damage, and reading it as "no chat" would leave an undeliverable delivery)."""
    if not isinstance(value, dict):
        raise BadRecord(f"origin must be an object, not {type(value).__name__}")
    origin: dict[str, Any] = {}
    for key in _ORIGIN_KEYS:
        item = value.get(key)
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise BadRecord(f"origin.{key} must be an integer or a string")
        origin[key] = item
    return origin


def parse_record(line: str) -> dict[str, Any]:
    """Decode and validate one line; :class:`BadRecord` says what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BadRecord(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise BadRecord(f"not an object: {type(record).__name__}")
    op = record.get("op")
    if op not in OPS:
        raise BadRecord(f"unknown op {op!r}")
    run_id = record.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise BadRecord("run_id must be a non-empty string")
    ts = record.get("ts", 0.0)
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise BadRecord("ts must be a finite number")
    clean: dict[str, Any] = {"op": op, "run_id": run_id, "ts": float(ts)}
    if op == "begin":
        clean["transport"] = _opt_str(record, "transport") or ""
        clean["engine"] = _opt_str(record, "engine") or ""
        clean["origin"] = _origin(record.get("origin"))
        clean["resume_line"] = _opt_str(record, "resume_line")
    elif op == "started":
        clean["resume"] = _opt_str(record, "resume")
        clean["resume_line"] = _opt_str(record, "resume_line")
    elif op == "outcome":
        status = record.get("status")
        if status not in STATUSES:
            raise BadRecord(f"unknown status {status!r}")
        pending = record.get("pending", False)
        if not isinstance(pending, bool):
            raise BadRecord("pending must be true or false")
        clean.update(
            status=status,
            answer=_opt_str(record, "answer") or "",
            error=_opt_str(record, "error"),
            resume_line=_opt_str(record, "resume_line"),
            pending=pending,
        )
    elif op == "answered":
        for key in ("transport", "key"):
            value = record.get(key)
            if not isinstance(value, str) or not value:
                raise BadRecord(f"{key} must be a non-empty string")
            clean[key] = value
    return clean


__all__ = ["OPS", "BadRecord", "parse_record", "serialize"]
