"""Property-based tests of the delivery journal (issue #14): random sequences of appends and
acks, then a torn tail, a corrupt middle record or a full disk; reopening never crashes and
every fully written record of an accepted run survives.

The model below is the journal's contract, not its code: a run is *finished* once delivered,
or once it has an outcome nobody still owes; reopening turns unfinished runs without an
outcome into ``interrupted`` deliveries.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from takopi.supervisor import journal as journal_module
from takopi.supervisor.journal import Journal, JournalWriteError

STATUSES = ("done", "error", "cancelled", "interrupted")
RUNS = 6

# (action, run index, status index, pending)
op_st = st.tuples(
    st.sampled_from(("begin", "started", "outcome", "delivered")),
    st.integers(0, RUNS - 1),
    st.integers(0, len(STATUSES) - 1),
    st.booleans(),
)
ops_st = st.lists(op_st, min_size=1, max_size=40)


@dataclass
class RunModel:
    begun: bool = False
    resume: str | None = None
    status: str | None = None
    pending: bool = False
    delivered: bool = False

    @property
    def finished(self) -> bool:
        return self.delivered or (self.status is not None and not self.pending)


def _run_id(index: int) -> str:
    return f"run-{index}"


def apply_ops(journal: Journal, ops: list[tuple[str, int, int, bool]]) -> list[tuple[str, str]]:
    """Make the valid calls among ``ops`` (as the run service would); the (op, run_id) of
    each call that wrote a record, in order."""
    written: list[tuple[str, str]] = []
    state: dict[str, RunModel] = {}
    for action, index, status, pending in ops:
        run_id = _run_id(index)
        run = state.get(run_id)
        if action == "begin":
            if run is not None:
                continue
            journal.begin(
                run_id,
                transport="tg",
                engine="codex",
                origin={"channel_id": index, "message_id": 100 + index},
            )
            state[run_id] = RunModel(begun=True)
        elif run is None or run.finished:
            if action == "delivered":
                assert journal.delivered(run_id) is False  # unknown or done: nothing written
            continue
        elif action == "started":
            journal.started(run_id, resume=f"tok-{index}", resume_line=f"`codex resume {index}`")
        elif action == "outcome":
            if run.status is not None:
                continue
            journal.outcome(run_id, status=STATUSES[status], answer="a", pending=pending)  # type: ignore[arg-type]
            run.status, run.pending = STATUSES[status], pending
        else:
            assert journal.delivered(run_id) is True
            run.delivered = True
        written.append((action, run_id))
    return written


def model(records: list[dict]) -> dict[str, tuple[str, bool]]:
    """What reopening must show, from the records that are on disk (in order)."""
    runs: dict[str, RunModel] = {}
    for record in records:
        run_id = record["run_id"]
        if record["op"] == "begin":
            runs[run_id] = RunModel(begun=True)
            continue
        run = runs.get(run_id)
        if run is None:
            continue  # its begin is gone: the record cannot be addressed
        if record["op"] == "outcome":
            run.status, run.pending = record["status"], record["pending"]
        elif record["op"] == "delivered":
            run.delivered = True
    expected = {}
    for run_id, run in runs.items():
        if run.finished:
            continue
        expected[run_id] = (
            run.status or "interrupted",
            True if run.status is None else run.pending,
        )
    return expected


def reopened_state(path: Path) -> tuple[dict[str, tuple[str, bool]], Journal]:
    journal = Journal(path)
    journal.load()
    state = {rid: (e.status or "", e.pending) for rid, e in journal.entries.items()}
    return state, journal


def file_records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.split(b"\n") if line]


def assert_clean_file(path: Path) -> None:
    """After a reopen the file holds only valid, complete lines."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    for record in file_records(data):
        assert record["op"] in ("begin", "started", "outcome", "delivered", "answered")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tkj-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _fresh(workdir: Path, compact_every: int = 1_000_000) -> Journal:
    path = workdir / uuid.uuid4().hex / "journal.jsonl"
    journal = Journal(path, compact_every=compact_every)
    journal.load()
    return journal


@given(ops=ops_st, cut=st.floats(0, 1))
def test_torn_tail_keeps_every_complete_record(workdir: Path, ops, cut: float) -> None:
    journal = _fresh(workdir)
    apply_ops(journal, ops)
    journal.close()
    data = journal.path.read_bytes()
    at = int(len(data) * cut)
    journal.path.write_bytes(data[:at])
    complete = data[: data.rfind(b"\n", 0, at) + 1] if at else b""
    note(f"cut at {at} of {len(data)}")

    state, reopened = reopened_state(journal.path)
    assert state == model(file_records(complete))
    assert reopened.skipped_records == (1 if at > len(complete) else 0)
    assert_clean_file(journal.path)
    # The repaired file is continued: a new record lands on a line of its own.
    reopened.begin("after", transport="tg", engine="codex", origin={"channel_id": 1})
    reopened.close()
    again, _ = reopened_state(journal.path)
    assert again == {**state, "after": ("interrupted", True)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
# A corrupt line: random bytes, or the record itself with one field (not run_id) replaced by
# any JSON value (valid JSON of the wrong type: the case that must not be half-applied).
corruption_st = st.one_of(
    st.binary(min_size=1, max_size=80).map(lambda b: ("bytes", b)),
    st.tuples(
        st.sampled_from(("op", "ts", "status", "pending", "origin", "resume_line", "answer")),
        json_values,
    ).map(lambda kv: ("field", kv)),
)


def _corrupt(line: bytes, corruption) -> bytes:
    kind, value = corruption
    if kind == "bytes":
        return value.replace(b"\n", b" ")
    record = json.loads(line)
    key, replacement = value
    record[key] = replacement
    return json.dumps(record).encode()


@given(ops=ops_st, line_pick=st.floats(0, 1), corruption=corruption_st)
def test_corrupt_middle_record_only_affects_its_run(
    workdir: Path, ops, line_pick: float, corruption
) -> None:
    journal = _fresh(workdir)
    apply_ops(journal, ops)
    journal.close()
    lines = journal.path.read_bytes().split(b"\n")[:-1]
    if not lines:
        return
    victim = min(int(len(lines) * line_pick), len(lines) - 1)
    hit_run = json.loads(lines[victim])["run_id"]
    garbage = _corrupt(lines[victim], corruption)
    corrupted = [*lines[:victim], garbage, *lines[victim + 1 :]]
    journal.path.write_bytes(b"\n".join(corrupted) + b"\n")

    state, reopened = reopened_state(journal.path)
    intact = [json.loads(line) for i, line in enumerate(lines) if i != victim]
    expected = model(intact)
    assert {k: v for k, v in state.items() if k != hit_run} == {
        k: v for k, v in expected.items() if k != hit_run
    }
    # Whatever survived is addressable: no delivery without the chat it answers.
    origin_replaced = corruption[0] == "field" and corruption[1][0] == "origin"
    for entry in reopened.entries.values():
        if entry.run_id == hit_run and origin_replaced:
            # Another object in place of the origin is a well-formed record (the writer also
            # takes an origin without a chat): no parser can tell. Its shape must still hold.
            assert isinstance(entry.origin, dict) and entry.engine == "codex", entry
            continue
        assert entry.origin.get("channel_id") is not None and entry.engine == "codex", entry
        assert entry.status in STATUSES
    assert_clean_file(journal.path)


@given(ops=ops_st, compact_every=st.integers(1, 8))
def test_reopen_after_compactions_matches_the_model(workdir: Path, ops, compact_every) -> None:
    journal = _fresh(workdir, compact_every=compact_every)
    apply_ops(journal, ops)
    journal.close()
    # The same calls against an uncompacted journal give the records the model folds.
    plain = _fresh(workdir)
    apply_ops(plain, ops)
    plain.close()
    state, _ = reopened_state(journal.path)
    assert state == model(file_records(plain.path.read_bytes()))


# ---------------------------------------------------------------------------- disk full


class TinyDisk:
    """A directory on a small filesystem that can be filled up and freed.

    A real tmpfs when this process may mount one (root, as in CI here); otherwise the
    journal's ``os.write`` is made to fail with ENOSPC while "full" (stated in the test id)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.mounted = False
        self._fake_full = False
        self._monkeypatch = monkeypatch
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(root)],
                check=True,
                capture_output=True,
                timeout=10,
            )
            self.mounted = True
        if not self.mounted:
            self._patch()

    def _patch(self) -> None:
        real_write = os.write
        disk = self

        class _Os:
            def __getattr__(self, name: str):  # everything else is the real os
                return getattr(os, name)

            @staticmethod
            def write(fd: int, data) -> int:
                if disk._fake_full:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real_write(fd, data)

        self._monkeypatch.setattr(journal_module, "os", _Os())

    def fill(self) -> None:
        if not self.mounted:
            self._fake_full = True
            return
        fd = os.open(self.root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 1):  # down to the last byte
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self._fake_full = False
        with contextlib.suppress(FileNotFoundError):
            (self.root / "filler").unlink()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False, timeout=10)


@pytest.fixture(scope="module")
def tiny_disk() -> Iterator[TinyDisk]:
    root = Path(tempfile.mkdtemp(prefix="tkdisk-"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        disk = TinyDisk(root, monkeypatch)
        try:
            yield disk
        finally:
            disk.close()
            shutil.rmtree(root, ignore_errors=True)


@given(ops=ops_st, full_at=st.integers(0, 40), free_at=st.none() | st.integers(0, 40))
def test_disk_full_refuses_new_runs_and_loses_nothing_accepted(
    tiny_disk: TinyDisk, ops, full_at: int, free_at: int | None
) -> None:
    note(f"tmpfs={tiny_disk.mounted}")
    tiny_disk.free()
    path = tiny_disk.root / uuid.uuid4().hex / "journal.jsonl"
    journal = Journal(path)
    journal.load()
    mirror = _fresh(Path(tempfile.mkdtemp(prefix="tkjm-")))  # same accepted calls, no faults
    full = False
    accepted: set[str] = set()
    try:
        for step, op in enumerate(ops):
            if step == full_at:
                tiny_disk.fill()
                full = True
            if free_at is not None and step == free_at and full:
                tiny_disk.free()
                full = False
            action, index = op[0], op[1]
            run_id = _run_id(index)
            if action == "begin" and run_id not in accepted:
                try:
                    apply_ops(journal, [op])
                except JournalWriteError as exc:
                    assert full, "a begin failed with room on the disk"
                    assert exc.errno == errno.ENOSPC and str(journal.path) in str(exc)
                    assert run_id not in journal.entries  # not accepted, not half-recorded
                    continue
                accepted.add(run_id)
                apply_ops(mirror, [op])
            elif run_id in accepted:
                # Never raises, full disk or not; the state in memory stays right.
                _replay_one(journal, op)
                _replay_one(mirror, op)
        # In memory nothing was lost, whatever the disk did.
        assert _state(journal) == _state(mirror)
        if full:
            tiny_disk.free()
            journal.begin("probe", transport="tg", engine="codex", origin={})
            mirror.begin("probe", transport="tg", engine="codex", origin={})
        journal.close()
        mirror.close()
        # Once a write succeeds again, the file holds everything the memory held.
        state, _ = reopened_state(path)
        expected, _ = reopened_state(mirror.path)
        assert state == expected
        assert_clean_file(path)
    finally:
        tiny_disk.free()
        shutil.rmtree(path.parent, ignore_errors=True)
        shutil.rmtree(mirror.path.parent.parent, ignore_errors=True)


def _replay_one(journal: Journal, op: tuple[str, int, int, bool]) -> None:
    action, index, status, pending = op
    run_id = _run_id(index)
    entry = journal.entries.get(run_id)
    if entry is None or entry.finished:
        return
    if action == "started":
        journal.started(run_id, resume=f"tok-{index}", resume_line=None)
    elif action == "outcome" and entry.status is None:
        journal.outcome(run_id, status=STATUSES[status], answer="a", pending=pending)  # type: ignore[arg-type]
    elif action == "delivered":
        journal.delivered(run_id)


def _state(journal: Journal) -> dict[str, tuple[str | None, bool, bool]]:
    return {k: (e.status, e.pending, e.delivered) for k, e in journal.entries.items()}


def test_a_null_origin_is_a_bad_record(workdir: Path) -> None:
    """Found by test_corrupt_middle_record_only_affects_its_run: ``"origin": null`` was read
    as an empty origin, leaving a pending delivery that answers no chat."""
    journal = _fresh(workdir)
    journal.begin("r", transport="tg", engine="codex", origin={"channel_id": 1})
    journal.close()
    record = json.loads(journal.path.read_bytes().split(b"\n")[0])
    record["origin"] = None
    journal.path.write_bytes(json.dumps(record).encode() + b"\n")
    _state, reopened = reopened_state(journal.path)
    assert "r" not in reopened.entries
