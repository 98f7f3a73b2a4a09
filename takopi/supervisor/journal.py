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
- ``{"op": "answered", "run_id", "ts", "transport", "key"}``: the chat message ``key``
  (``channel:message``) of ``transport`` is answered by run ``run_id`` (written by compaction
  for runs whose entry is gone; see below).

*Answered messages*: every run begun for a chat message (a ``begin`` whose origin names one;
an ``interrupted`` reply to a message that never ran is such a run too) answers that message,
so it must not be handled again if its chat service offers it again — its confirmation may
have been lost (see :mod:`takopi.supervisor.intake`). :meth:`Journal.already_answered` knows
these keys for :data:`ANSWERED_RETENTION` (Telegram keeps an unconfirmed update 24 h at most),
independently of the run's entry.

An entry is *finished* once it has an outcome that is not pending or a ``delivered`` record.
Compaction rewrites the file (temp file + fsync + rename) with only unfinished entries and
``answered`` records for the keys younger than :data:`ANSWERED_RETENTION`.
On load, entries without an outcome (the supervisor died mid-run) become ``interrupted``
deliveries carrying the resume line seen at ``started``; invalid lines are reported and
skipped (:mod:`takopi.supervisor.journal_records`). Write failures: see :class:`Journal`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.logging import get_logger
from takopi.protocol.delivery import INTERRUPTED_ERROR, Delivery, DeliveryStatus
from takopi.supervisor.intake import intake_key
from takopi.supervisor.journal_records import BadRecord, parse_record, serialize

log = get_logger(__name__)

Status = DeliveryStatus

ANSWERED_RETENTION = 48 * 3600.0
"""How long (seconds, wall clock) an answered message key is remembered: twice the 24 h a
chat service (Telegram) keeps an update it could offer again."""


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


class JournalWriteError(OSError):
    """A record could not be written (disk full, I/O error); the file is left as it was."""


class Journal:
    """Append-only, fsync'd record of runs; folds into :class:`JournalEntry` objects.

    Failure contract: a write that fails (disk full, I/O error) leaves the file as it was
    (a partly written line is cut off again). :meth:`begin` then raises
    :class:`JournalWriteError` — the run is not accepted, the caller tells the user why.
    Later records (``started``, ``outcome``, ``delivered``) of an accepted run never fail the
    run: the entry is updated in memory (its outcome stays deliverable while the supervisor
    lives), the error is logged and counted, and the next successful write first rewrites the
    whole file from memory, so the records that were missed are on disk again.
    """

    def __init__(
        self, path: Path, *, compact_every: int = 512, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.entries: dict[str, JournalEntry] = {}
        self._answered: dict[tuple[str, str], tuple[float, str]] = {}
        """(transport, message key) → when it was answered (wall clock), by which run."""
        self._clock = clock
        self._records_since_compact = 0
        self._compact_every = compact_every
        self._fd: int | None = None
        self._size = 0
        self._dirty = False
        self.write_errors = 0
        """Failed writes since start (shown by ``takopictl status``)."""
        self.last_error: str | None = None
        self.skipped_records = 0
        """Invalid lines skipped by the last :meth:`load` (a torn tail included)."""

    # -- loading -----------------------------------------------------------------------
    def load(self) -> list[JournalEntry]:
        """Read the file, mark runs without an outcome as interrupted; returns those.

        Never raises for bad content: a torn last line (a crash mid-write) is cut off, any
        other invalid line is logged with its number and skipped, records of runs whose
        ``begin`` is missing are skipped; the file is then rewritten (compacted) with what
        is valid. If it cannot be rewritten (disk full) it is kept and appended to."""
        self.close()
        self.entries.clear()
        self._answered.clear()
        self.skipped_records = 0
        raw = self._read()
        lines = raw.split(b"\n")
        torn = lines.pop()  # after the last newline: empty, or a record cut off mid-write
        if torn:
            self.skipped_records += 1
            log.warning("journal.torn_tail", path=str(self.path), bytes=len(torn))
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = parse_record(line.decode("utf-8"))
            except (BadRecord, UnicodeDecodeError) as exc:
                self.skipped_records += 1
                log.warning("journal.bad_record", path=str(self.path), line=lineno, error=str(exc))
                continue
            if record["op"] == "answered":  # stands alone: its run may be long gone
                key = (record["transport"], record["key"])
                self._answered[key] = (record["ts"], record["run_id"])
                continue
            if record["op"] != "begin" and record["run_id"] not in self.entries:
                self.skipped_records += 1
                log.warning(
                    "journal.orphan_record", line=lineno, op=record["op"], run_id=record["run_id"]
                )
                continue
            self._apply(record)
        interrupted = []
        for entry in self.entries.values():
            if entry.status is None:
                entry.status = "interrupted"
                entry.error = INTERRUPTED_ERROR
                entry.pending = True
                interrupted.append(entry)
        good = len(raw) - len(torn)
        try:
            self.compact()
        except OSError as exc:
            self._note_error("compact", exc)
            self._dirty = True  # rewritten by the next write that works
            self._open(truncate_to=good)
        return interrupted

    def _read(self) -> bytes:
        """The file's bytes (empty when there is none). A file that exists but cannot be
        read (EIO, EACCES) is moved aside, never rewritten: what it owes users is kept for
        someone to recover, and this journal starts afresh."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            try:
                self.path.rename(aside)
            except OSError as rename_exc:
                raise JournalWriteError(
                    f"cannot read the delivery journal {self.path} ({exc}) "
                    f"nor move it aside ({rename_exc})"
                ) from None
            log.error("journal.unreadable", path=str(self.path), error=str(exc), kept=str(aside))
            return b""

    def _open(self, truncate_to: int | None = None) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if truncate_to is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, truncate_to)
            self._fd = fd
            self._size = os.fstat(fd).st_size
        return self._fd

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
            key = intake_key(entry.origin)
            if key is not None and entry.transport:
                self._answered[(entry.transport, key)] = (entry.ts, run_id)
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
    def _write(self, record: dict[str, Any]) -> None:
        """Append one line and fsync it, or leave the file as it was and raise."""
        line = serialize(record)
        try:
            if self._dirty:
                self.compact()  # puts back what earlier failed writes missed
            fd = self._open()
            start = self._size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # no partial line for the next record to glue to
                raise
        except OSError as exc:
            self._note_error(record["op"], exc)
            raise JournalWriteError(
                exc.errno, f"cannot write the delivery journal {self.path}: {exc.strerror or exc}"
            ) from exc
        self._size = start + len(line)

    def _note_error(self, what: str, exc: OSError) -> None:
        self.write_errors += 1
        self.last_error = f"{what}: {exc.strerror or exc}"
        log.error("journal.write_failed", path=str(self.path), op=what, error=str(exc))

    def _append(self, record: dict[str, Any], *, required: bool = False) -> JournalEntry | None:
        """Write then apply ``record``. A failed write raises when ``required`` (nothing is
        applied); otherwise the record is applied in memory only and the file is marked for
        a rewrite (see the class docstring)."""
        record.setdefault("ts", self._clock())
        try:
            self._write(record)
        except JournalWriteError:
            if required:
                raise
            self._dirty = True
        entry = self._apply(record)
        self._records_since_compact += 1
        if entry.finished:
            self.entries.pop(entry.run_id, None)
            if self._records_since_compact >= self._compact_every and not self._dirty:
                try:
                    self.compact()
                except OSError as exc:  # the appended file is still complete
                    self._note_error("compact", exc)
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
        """A run was accepted; :class:`JournalWriteError` if that cannot be recorded (the
        run must then be refused: its outcome could not survive a crash)."""
        self._append(
            {
                "op": "begin",
                "run_id": run_id,
                "transport": transport,
                "engine": engine,
                "origin": origin,
                "resume_line": resume_line,
            },
            required=True,
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

    def already_answered(self, transport: str, key: str) -> bool:
        """Whether a run (an ``interrupted`` reply included) began for message ``key`` of
        ``transport`` within :data:`ANSWERED_RETENTION` (see the module docstring)."""
        seen = self._answered.get((transport, key))
        return seen is not None and self._clock() - seen[0] < ANSWERED_RETENTION

    def answered_count(self) -> int:
        """Answered message keys remembered (expired ones go at the next compaction)."""
        return len(self._answered)

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
        """Rewrite the file keeping only unfinished entries and answered keys still within
        :data:`ANSWERED_RETENTION` (atomic, fsync'd). ``OSError`` (disk full) leaves the
        current file and its handle as they were."""
        self._records_since_compact = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        horizon = self._clock() - ANSWERED_RETENTION
        answered = {k: seen for k, seen in self._answered.items() if seen[0] > horizon}
        data = b"".join(
            serialize(record)
            for entry in self.entries.values()
            if not entry.finished
            for record in _entry_records(entry)
        ) + b"".join(
            serialize(
                {"op": "answered", "run_id": run_id, "ts": ts, "transport": transport, "key": key}
            )
            for (transport, key), (ts, run_id) in answered.items()
        )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.close()
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.entries = {k: v for k, v in self.entries.items() if not v.finished}
        self._answered = answered
        self._dirty = False
        self._open()

    def close(self) -> None:
        """Close the file handle."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


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


__all__ = [
    "ANSWERED_RETENTION",
    "INTERRUPTED_ERROR",
    "Journal",
    "JournalEntry",
    "JournalWriteError",
]
