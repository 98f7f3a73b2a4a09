"""Delivery journal: every run's outcome survives transport-worker and supervisor crashes.

File: ``<state dir>/journal.jsonl``, one JSON object per line, each append fsync'd.
Record shapes (``op`` discriminates; every record has ``run_id`` and ``ts``):

- ``{"op": "begin", "run_id", "ts", "transport", "engine", "origin": {"channel_id",
  "message_id", "thread_id", "progress_message_id", "context_line"}, "resume_line": str|null}``
  (``resume_line`` is set when the run resumes an existing thread)
- ``{"op": "started", "run_id", "ts", "resume": "<token value>", "resume_line": str|null}``
- ``{"op": "outcome", "run_id", "ts", "status": "done"|"error"|"cancelled"|"interrupted",
  "answer": str, "error": str|null, "resume_line": str|null, "pending": bool}``
  (``pending`` = the consumer was gone, a transport must deliver it)
- ``{"op": "delivered", "run_id", "ts"}``

An entry is *finished* once it has an outcome that is not pending or a ``delivered`` record.
Compaction rewrites the file (temp file + fsync + rename) with only unfinished entries.
On load, entries without an outcome (the supervisor died mid-run) become ``interrupted``
deliveries carrying the resume line seen at ``started``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.logging import get_logger
from takopi.protocol.delivery import INTERRUPTED_ERROR, Delivery, DeliveryStatus

log = get_logger(__name__)

Status = DeliveryStatus


@dataclass(slots=True)
class JournalEntry:
    """Everything known about one run, folded from its records."""

    run_id: str
    transport: str = ""
    engine: str = ""
    origin: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    resume_line: str | None = None
    status: Status | None = None
    answer: str = ""
    error: str | None = None
    pending: bool = False
    delivered: bool = False
    ts: float = 0.0

    @property
    def finished(self) -> bool:
        """No delivery is owed for this run any more."""
        return self.delivered or (self.status is not None and not self.pending)

    def delivery(self) -> Delivery:
        """What ``pending_deliveries()`` hands to transports for this run."""
        origin = self.origin
        return Delivery(
            delivery_id=self.run_id,
            status=self.status or "interrupted",
            transport=self.transport,
            engine=self.engine,
            answer=self.answer,
            error=self.error,
            resume_line=self.resume_line,
            context_line=origin.get("context_line"),
            channel_id=origin.get("channel_id"),
            message_id=origin.get("message_id"),
            thread_id=origin.get("thread_id"),
            progress_message_id=origin.get("progress_message_id"),
        )


class Journal:
    """Append-only, fsync'd record of runs; folds into :class:`JournalEntry` objects."""

    def __init__(self, path: Path, *, compact_every: int = 512) -> None:
        self.path = Path(path)
        self.entries: dict[str, JournalEntry] = {}
        self._records_since_compact = 0
        self._compact_every = compact_every
        self._fh: Any = None

    # -- loading -----------------------------------------------------------------------
    def load(self) -> list[JournalEntry]:
        """Read the file, mark runs without an outcome as interrupted; returns those."""
        self.entries.clear()
        if self.path.exists():
            with self.path.open("r", encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        record = json.loads(line)
                        self._apply(record)
                    except (ValueError, TypeError, KeyError) as exc:
                        # A torn last line after a crash is expected; anything else is logged.
                        log.warning("journal.bad_record", line=lineno, error=str(exc))
        interrupted = []
        for entry in self.entries.values():
            if entry.status is None:
                entry.status = "interrupted"
                entry.error = INTERRUPTED_ERROR
                entry.pending = True
                interrupted.append(entry)
        self._open()
        self.compact()
        return interrupted

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")

    def _apply(self, record: dict[str, Any]) -> JournalEntry:
        op = record["op"]
        run_id = str(record["run_id"])
        entry = self.entries.get(run_id)
        if entry is None:
            entry = JournalEntry(run_id=run_id)
            self.entries[run_id] = entry
        entry.ts = float(record.get("ts") or entry.ts)
        if op == "begin":
            entry.transport = str(record.get("transport") or "")
            entry.engine = str(record.get("engine") or "")
            entry.origin = dict(record.get("origin") or {})
            entry.resume_line = record.get("resume_line") or entry.resume_line
        elif op == "started":
            entry.resume = record.get("resume")
            entry.resume_line = record.get("resume_line") or entry.resume_line
        elif op == "outcome":
            entry.status = record["status"]
            entry.answer = str(record.get("answer") or "")
            entry.error = record.get("error")
            entry.resume_line = record.get("resume_line") or entry.resume_line
            entry.pending = bool(record.get("pending"))
        elif op == "delivered":
            entry.delivered = True
        else:
            raise KeyError(f"unknown op {op!r}")
        return entry

    # -- writing -----------------------------------------------------------------------
    def _append(self, record: dict[str, Any]) -> JournalEntry:
        record.setdefault("ts", time.time())
        entry = self._apply(record)
        self._open()
        self._fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._records_since_compact += 1
        if entry.finished:
            self.entries.pop(entry.run_id, None)
            if self._records_since_compact >= self._compact_every:
                self.compact()
        return entry

    def begin(
        self,
        run_id: str,
        *,
        transport: str,
        engine: str,
        origin: dict[str, Any],
        resume_line: str | None = None,
    ) -> None:
        """A run was accepted."""
        self._append(
            {
                "op": "begin",
                "run_id": run_id,
                "transport": transport,
                "engine": engine,
                "origin": origin,
                "resume_line": resume_line,
            }
        )

    def started(self, run_id: str, *, resume: str, resume_line: str | None) -> None:
        """The run's session token (and its formatted resume line) is known."""
        self._append(
            {"op": "started", "run_id": run_id, "resume": resume, "resume_line": resume_line}
        )

    def outcome(
        self,
        run_id: str,
        *,
        status: Status,
        answer: str = "",
        error: str | None = None,
        resume_line: str | None = None,
        pending: bool,
    ) -> None:
        """The run ended; ``pending`` when no consumer received its terminal event."""
        self._append(
            {
                "op": "outcome",
                "run_id": run_id,
                "status": status,
                "answer": answer,
                "error": error,
                "resume_line": resume_line,
                "pending": pending,
            }
        )

    def delivered(self, run_id: str) -> bool:
        """A transport delivered a pending outcome; False if unknown or already done."""
        entry = self.entries.get(run_id)
        if entry is None:
            return False
        self._append({"op": "delivered", "run_id": run_id})
        return True

    def pending(self, transport: str | None = None) -> list[JournalEntry]:
        """Outcomes owed to users (optionally only those of one transport), oldest first."""
        items = [
            e
            for e in self.entries.values()
            if e.status is not None and e.pending and not e.delivered
            if transport is None or not e.transport or e.transport == transport
        ]
        return sorted(items, key=lambda e: e.ts)

    def deliveries(self, transport: str | None = None) -> list[Delivery]:
        """:meth:`pending` outcomes as the deliveries transports get."""
        return [entry.delivery() for entry in self.pending(transport)]

    def compact(self) -> None:
        """Rewrite the file keeping only unfinished entries (atomic, fsync'd)."""
        self._records_since_compact = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for entry in self.entries.values():
                if entry.finished:
                    continue
                for record in _entry_records(entry):
                    fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.entries = {k: v for k, v in self.entries.items() if not v.finished}
        self._open()

    def close(self) -> None:
        """Close the file handle."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _entry_records(entry: JournalEntry) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {
            "op": "begin",
            "run_id": entry.run_id,
            "ts": entry.ts,
            "transport": entry.transport,
            "engine": entry.engine,
            "origin": entry.origin,
            "resume_line": entry.resume_line,
        }
    ]
    if entry.resume is not None:
        records.append(
            {
                "op": "started",
                "run_id": entry.run_id,
                "ts": entry.ts,
                "resume": entry.resume,
                "resume_line": entry.resume_line,
            }
        )
    if entry.status is not None:
        records.append(
            {
                "op": "outcome",
                "run_id": entry.run_id,
                "ts": entry.ts,
                "status": entry.status,
                "answer": entry.answer,
                "error": entry.error,
                "resume_line": entry.resume_line,
                "pending": entry.pending,
            }
        )
    return records


__all__ = ["INTERRUPTED_ERROR", "Journal", "JournalEntry"]
