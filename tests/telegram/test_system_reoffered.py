"""A message the supervisor answered ``interrupted`` is not answered again when Telegram
offers it again (whole system: supervisor + telegram transport worker + codex engine worker
with the fake ``codex`` CLI, against the fake Bot API).

The ``interrupted`` reply for a message taken but never run assumed that Telegram was told
the update was taken (confirmed by the next ``getUpdates``). It was not when the transport
was killed before that poll, when the stop-time confirm failed, or when a successor polled
only after the orphan grace: Telegram then offered the update again and the next transport
handled it once more (a run, or the offline-backlog notice), two replies for one message. The
same held for a message whose run had begun (it is answered by that run's outcome)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from takopi.supervisor.intake import INTAKE_LOST_ERROR
from takopi.telegram.gate import BACKLOG_NOTICE
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT
from tests.telegram.test_system import System, system_in_tmp
from tests.telegram.test_system_intake import _final, _replies, _settled

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

FOREVER = 1_000_000
"""Fault count: every matching request until the faults are cleared."""


@pytest.fixture
def system(server: Any, fake_codex: Any) -> Iterator[System]:
    with system_in_tmp(server, "tkr") as sys_:
        yield sys_


def _taken_not_confirmed(system: System, server: Any, text: str) -> dict[str, Any]:
    """The user sends ``text``; the transport takes it (it waits in its 30 s coalescing
    window, not run) but no poll may confirm it to Telegram (429)."""
    server.inject("429", method="getUpdates", count=FOREVER, retry_after=1, confirming=True)
    msg = server.send_user_message(CHAT, text)
    wait_until(lambda: system.status()["open_intakes"] == 1, 30)
    assert server.pending_updates() == 1  # taken, not confirmed
    # A later start sees it as offline backlog (sent before that start's second).
    wait_until(lambda: time.time() >= msg["date"] + 1, 5)
    return msg


def _block_polls(server: Any) -> None:
    """No transport gets any update (a successor would take the message again)."""
    server.inject("429", method="getUpdates", count=FOREVER, retry_after=1)


def _kill_transport_and_wait_for_successor(system: System) -> None:
    old = system.kill_transport()
    wait_until(
        lambda: (w := system.worker("transport"))["pid"] != old["pid"] and w["state"] == "ready",
        30,
    )


def _answered_once(system: System, server: Any, fake_codex: Any, msg: dict[str, Any]) -> None:
    """After the restart: ``msg`` gets its one ``interrupted`` reply; Telegram offers it again
    and it is ignored (no notice, no run); a later prompt still runs."""
    reply = system.wait_bot(lambda m: m.reply_to_message_id == msg["message_id"], 30)
    assert reply.text.startswith("interrupted") and INTAKE_LOST_ERROR in reply.text
    wait_until(lambda: server.pending_updates() == 0, 30)  # offered again, then confirmed
    later = server.send_user_message(CHAT, "a later prompt")
    assert "ok: a later prompt" in _final(system, later).text
    wait_until(lambda: _settled(system), 30)
    assert [m.text[:40] for m in _replies(server, msg)] == [reply.text[:40]]
    assert not any(BACKLOG_NOTICE in m.text for m in server.bot_messages(CHAT))
    assert [c["prompt"] for c in fake_codex.calls()] == ["a later prompt"]
    assert "already_answered" in system.log_path.read_text()


@pytest.mark.parametrize("backlog", ["notify", "run"])
def test_a_message_taken_by_a_killed_transport_is_answered_once_across_a_stop(
    system: System, server: Any, fake_codex: Any, backlog: str
) -> None:
    """The transport is killed after taking a message and before confirming it; the
    service is stopped within the orphan grace (the message is owed ``interrupted``) and
    started again: Telegram offers the message again, and it is not handled a second time
    (neither the offline-backlog notice nor a run)."""
    policy = [f'offline_backlog = "{backlog}"']
    system.start(forward_coalesce_s=30, telegram=policy)
    msg = _taken_not_confirmed(system, server, "taken, then killed")
    _block_polls(server)
    _kill_transport_and_wait_for_successor(system)
    system.stop()
    assert server.pending_updates() == 1  # Telegram will offer it again
    server.clear_faults()
    system.start(telegram=policy)
    _answered_once(system, server, fake_codex, msg)


def test_a_message_whose_stop_time_confirm_failed_is_answered_once(
    system: System, server: Any, fake_codex: Any
) -> None:
    """A clean stop whose confirm of the taken update fails (429): the message is owed
    ``interrupted`` and offered again to the next start, which ignores it."""
    system.start(forward_coalesce_s=30)
    msg = _taken_not_confirmed(system, server, "taken, then stopped")
    system.stop()
    assert server.pending_updates() == 1
    assert "telegram.stop.confirm_failed" in system.log_path.read_text()
    server.clear_faults()
    system.start()
    _answered_once(system, server, fake_codex, msg)


def test_a_message_offered_to_a_successor_after_the_orphan_grace_is_answered_once(
    system: System, server: Any, fake_codex: Any
) -> None:
    """The transport is killed before confirming a message; its successor cannot poll until
    the orphan grace is over (the message is answered ``interrupted``), then Telegram offers
    it the message again: ignored, not answered with the offline-backlog notice too."""
    system.start(forward_coalesce_s=30, tables=["orphan_grace = 1"])  # in [supervisor]
    msg = _taken_not_confirmed(system, server, "taken, then orphaned")
    _block_polls(server)
    _kill_transport_and_wait_for_successor(system)
    reply = system.wait_bot(lambda m: m.reply_to_message_id == msg["message_id"], 30)
    assert reply.text.startswith("interrupted") and INTAKE_LOST_ERROR in reply.text
    assert server.pending_updates() == 1
    server.clear_faults()  # the successor polls again: Telegram offers the message again
    wait_until(lambda: server.pending_updates() == 0, 30)
    later = server.send_user_message(CHAT, "/ctx")  # a command: no coalescing window
    system.wait_bot(lambda m: m.reply_to_message_id == later["message_id"], 30)
    wait_until(lambda: _settled(system), 30)
    assert [m.text for m in _replies(server, msg)] == [reply.text]
    assert not any(BACKLOG_NOTICE in m.text for m in server.bot_messages(CHAT))
    assert fake_codex.calls() == []
    assert "already_answered" in system.log_path.read_text()


def _terminal_replies(server: Any, msg: dict[str, Any]) -> list[str]:
    """Replies to ``msg`` that answer it (progress messages aside)."""
    return [
        m.text
        for m in _replies(server, msg)
        if m.text.startswith(("done", "error", "cancelled", "interrupted"))
        or BACKLOG_NOTICE in m.text
    ]


def _running_not_confirmed(server: Any, fake_codex: Any, text: str) -> dict[str, Any]:
    """The user sends ``text``; its run begins but no poll may confirm the update (429)."""
    server.inject("429", method="getUpdates", count=FOREVER, retry_after=1, confirming=True)
    msg = server.send_user_message(CHAT, text)
    wait_until(lambda: fake_codex.calls(), 30)
    assert server.pending_updates() == 1
    # A later start sees it as offline backlog (sent before that start's second).
    wait_until(lambda: time.time() >= msg["date"] + 1, 5)
    return msg


def test_a_run_in_flight_at_a_stop_whose_confirm_failed_is_answered_once(
    system: System, server: Any, fake_codex: Any
) -> None:
    """A message whose run is still going at a clean stop, and whose update the stop could
    not confirm (429): the run's terminal reply is its one answer; offered again to the next
    start, it is neither run again nor answered with the offline-backlog notice."""
    system.start()
    msg = _running_not_confirmed(server, fake_codex, "wait gate_stop")
    system.stop()
    assert server.pending_updates() == 1
    server.clear_faults()
    system.start()
    wait_until(lambda: server.pending_updates() == 0, 30)
    later = server.send_user_message(CHAT, "a later prompt")
    assert "ok: a later prompt" in _final(system, later).text
    wait_until(lambda: _settled(system), 30)
    (reply,) = _terminal_replies(server, msg)
    assert reply.startswith("error") and "shutting down" in reply
    assert [c["prompt"] for c in fake_codex.calls()] == ["wait gate_stop", "a later prompt"]
    assert "already_answered" in system.log_path.read_text()


def test_a_run_whose_transport_was_killed_before_the_confirm_is_not_run_again(
    system: System, server: Any, fake_codex: Any
) -> None:
    """The transport is killed while a message's run goes on and before the update was
    confirmed: its successor is offered the message again and ignores it; the run's answer,
    journaled, is the one reply."""
    system.start()
    msg = _running_not_confirmed(server, fake_codex, "wait gate_kill")
    system.kill_transport()
    server.clear_faults()
    wait_until(lambda: server.pending_updates() == 0, 30)  # the successor took it again
    fake_codex.open_gate("gate_kill")
    assert "ok: wait gate_kill" in _final(system, msg).text
    later = server.send_user_message(CHAT, "a later prompt")
    assert "ok: a later prompt" in _final(system, later).text
    wait_until(lambda: _settled(system), 30)
    (reply,) = _terminal_replies(server, msg)
    assert reply.startswith("done")
    assert [c["prompt"] for c in fake_codex.calls()] == ["wait gate_kill", "a later prompt"]
    assert "already_answered" in system.log_path.read_text()
