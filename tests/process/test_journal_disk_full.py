"""The delivery journal's disk fills up under a running supervisor (issue #14).

Contract (``takopi.supervisor.journal.Journal``): a new run that cannot be journaled is not
started and its user gets a clear error; a run accepted before keeps going and its user gets
the answer; the supervisor and its workers keep running; once there is room again the file
is rewritten from memory and new runs are accepted. The state directory is a 256 KiB tmpfs,
filled with a filler file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


@pytest.fixture
def state_tmpfs(supervisor: SupervisorHarness) -> Iterator[Path]:
    state = supervisor.base / "state"
    state.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(state)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    try:
        yield state
    finally:
        supervisor.kill_all()
        subprocess.run(["umount", "-l", str(state)], check=False, timeout=10)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def _reply(harness: SupervisorHarness, seq: int) -> str:
    """The terminal reply to user message ``seq``."""
    return str(
        wait_until(lambda: [f["text"] for f in harness.finals() if f.get("reply_to") == seq], 30)[0]
    )


def _final(harness: SupervisorHarness, word: str) -> str:
    return str(
        wait_until(lambda: [f["text"] for f in harness.finals() if word in f["text"]], 30)[0]
    )


def test_disk_full_refuses_new_runs_keeps_accepted_ones(
    supervisor: SupervisorHarness, state_tmpfs: Path
) -> None:
    supervisor.write_config(extra="[supervisor]\nping_interval = 0.5\n")
    supervisor.start()
    supervisor.send("answer=first")
    assert _final(supervisor, "first").startswith("done")
    pids = {w["name"]: w["pid"] for w in supervisor.control("status")["workers"]}

    supervisor.send("sleep=2 answer=accepted-before")
    wait_until(
        lambda: (
            supervisor.agent_log.exists() and supervisor.agent_log.read_text().count("begin") >= 2
        )
    )
    filler = _fill(state_tmpfs)
    # The journal's last page may still take a few records: send until one is refused.
    refused = None
    for attempt in range(40):
        seq = supervisor.send(f"answer=while-full-{attempt}")
        text = _reply(supervisor, seq)
        if "cannot record this run" in text:
            refused = (attempt, text)
            break
        assert text.startswith("done") and f"while-full-{attempt}" in text, text
    assert refused is not None, "the journal never ran out of room"
    attempt, text = refused
    assert text.startswith("error") and "No space left on device" in text, text
    assert f"while-full-{attempt}" not in supervisor.agent_log.read_text()  # never started
    # The run accepted before the disk filled up still answers.
    assert _final(supervisor, "accepted-before").startswith("done")

    status = supervisor.control("status")
    assert status["state"] == "running" and status["journal_errors"] >= 1
    assert "No space left" in status["journal_last_error"]
    assert {w["name"]: w["pid"] for w in status["workers"]} == pids

    filler.unlink()
    supervisor.send("answer=after-free")
    assert _final(supervisor, "after-free").startswith("done")
    journal = state_tmpfs / "journal.jsonl"
    lines = journal.read_text().splitlines()
    assert all(json.loads(line)["op"] for line in lines)  # whole, valid records only
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
