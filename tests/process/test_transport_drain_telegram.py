"""SIGTERM drain with the real Telegram transport worker against the fake Bot API (real
per-chat outbox pacing): a run that finishes while takopi shuts down still gets its final
message into the chat. Uses the telegram tests' fake Bot API, fake ``codex`` and system
harness."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT, fake_codex, server
from tests.telegram.test_system import System

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

__all__ = ["fake_codex", "server"]  # fixtures used below


@pytest.fixture
def system(server: Any, fake_codex: Any) -> Iterator[System]:
    base = Path("/tmp") / f"tkd-{uuid.uuid4().hex[:8]}"  # ipc paths are length-limited
    base.mkdir()
    sys_ = System(base, server)
    try:
        yield sys_
    finally:
        sys_.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_answer_finished_during_shutdown_reaches_telegram(
    system: System, server: Any, fake_codex: Any
) -> None:
    system.start()
    user = server.send_user_message(CHAT, "wait gate_stop")
    wait_until(lambda: fake_codex.calls(), 30)
    system.wait_bot(lambda m: m.reply_to_message_id == user["message_id"])

    assert system.proc is not None
    system.proc.send_signal(signal.SIGTERM)  # the run gets the shutdown grace...
    wait_until(lambda: "supervisor.stopping" in system.log(), 10)
    fake_codex.open_gate("gate_stop")  # ...and finishes in it
    assert system.proc.wait(60) == 0

    finals = [
        m
        for m in server.bot_messages(CHAT)
        if m.reply_to_message_id == user["message_id"] and m.text.startswith("done")
    ]
    assert finals and "ok: wait gate_stop" in finals[-1].text, [
        m.text for m in server.bot_messages(CHAT)
    ]
    assert "transport.stopping" in system.log()
