"""Service lifecycle through the real entry points: sd_notify as systemd would see it, and
SIGTERM with runs in flight (every run still gets a terminal reply)."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import TAKOPI, SupervisorProc
from tests.support.waiting import wait_until

pytestmark = pytest.mark.process


class NotifySocket:
    """A NOTIFY_SOCKET like systemd's: a unix datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages.extend(data.decode().splitlines())

    def saw(self, prefix: str, after: int = 0) -> bool:
        return any(m.startswith(prefix) for m in self.drain()[after:])

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(120)
def test_sd_notify_sequence_via_takopi(
    tmp_path: Path, supervisor_factory: Callable[[], SupervisorProc]
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        sup = supervisor_factory()
        sup.env = dict(sup.env, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000")
        sup.write_config('[plugins]\nenabled = ["takopi-clitest"]\n')
        sup.start(args=[TAKOPI, "--config", str(sup.config)])
        wait_until(lambda: notify.saw("READY=1"), 60, "READY=1")
        wait_until(lambda: notify.saw("WATCHDOG=1"), 30, "WATCHDOG=1")
        assert any(m.startswith("STATUS=") for m in notify.messages)
        ready_at = next(i for i, m in enumerate(notify.messages) if m == "READY=1")
        # READY only once the transport is up: its ready line is already in the outbox.
        assert sup.ready_count() >= 1
        assert "STOPPING=1" not in notify.messages[:ready_at]

        mark = len(notify.drain())
        assert sup.ctl("reload").returncode == 0
        wait_until(lambda: notify.saw("RELOADING=1", mark), 30, "RELOADING=1")
        after = notify.drain()[mark:]
        assert after.index("RELOADING=1") < len(after) - 1
        assert any(m.startswith("MONOTONIC_USEC=") for m in after)
        wait_until(lambda: "READY=1" in notify.drain()[mark:], 30, "READY=1 after reload")

        mark = len(notify.drain())
        assert sup.ctl("stop").returncode == 0
        assert sup.proc.wait(timeout=60) == 0
        assert notify.saw("STOPPING=1", mark)
    finally:
        notify.close()


@pytest.mark.timeout(120)
def test_sigterm_answers_every_run(
    supervisor_factory: Callable[[], SupervisorProc],
) -> None:
    sup = supervisor_factory()
    sup.write_config('[plugins]\nenabled = ["takopi-clitest"]\n')
    sup.start(args=[TAKOPI, "--config", str(sup.config)])
    quick = sup.send("sleep=2 answer=made-it")
    slow = [sup.send("sleep=120 answer=never") for _ in range(2)]
    wait_until(lambda: len(json.loads(sup.ctl("runs", "--json").stdout)["runs"]) == 3, 60, "3 runs")
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.proc.wait(timeout=90) == 0
    lock = sup.config.with_suffix(".lock")
    assert not lock.exists()

    def final(message_id: int) -> str:
        texts = [
            r["text"]
            for r in sup.replies_to(message_id)
            if not r["text"].startswith(("starting", "working"))
        ]
        assert texts, f"no terminal reply for message {message_id}: {sup.outbox()}"
        return texts[-1]

    assert "made-it" in final(quick)  # finished within the shutdown grace
    for message_id in slow:
        text = final(message_id)
        assert "never" not in text
        assert "clitest resume" in text  # the user can pick the thread up again
