"""Exactly-once intake through the whole system (supervisor + telegram transport worker +
codex engine worker with the fake ``codex`` CLI, against the fake Bot API): messages handled
together — a prompt replaced by a newer one while coalescing, the files of an album — end
with one terminal outcome each even when the transport is killed mid-run, and messages the
transport took but had not run yet when the service stopped cleanly are answered after the
restart instead of vanishing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from takopi.supervisor.control import request
from takopi.supervisor.intake import INTAKE_LOST_ERROR
from takopi.supervisor.paths import resolve_paths
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT
from tests.telegram.test_system import System, system_in_tmp

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

COALESCE_S = 3.0
"""Long enough that two prompts sent back to back coalesce even on a loaded machine."""


@pytest.fixture
def system(server: Any, fake_codex: Any) -> Iterator[System]:
    with system_in_tmp(server, "tki") as sys_:
        yield sys_


def _replies(server: Any, msg: dict[str, Any]) -> list[Any]:
    return [m for m in server.bot_messages(CHAT) if m.reply_to_message_id == msg["message_id"]]


def _final(system: System, msg: dict[str, Any], timeout: float = 60.0) -> Any:
    return system.wait_bot(
        lambda m: (
            m.reply_to_message_id == msg["message_id"]
            and m.text.startswith(("done", "error", "interrupted"))
        ),
        timeout,
    )


def _kill_transport(system: System) -> None:
    """kill -9 the transport worker and wait for its successor to be ready."""
    old = system.kill_transport()
    wait_until(
        lambda: (w := system.worker("transport"))["pid"] != old["pid"] and w["state"] == "ready",
        30,
    )


def _settled(system: System) -> bool:
    """Nothing open with the supervisor, nothing left to deliver."""
    status = system.status()
    return status["open_intakes"] == 0 and status["pending_deliveries"] == 0


def _after_a_later_update(system: System, server: Any, text: str) -> None:
    """The successor takes a later update: any orphan still open is known lost at once and
    journaled ``interrupted``; wait until that is delivered too."""
    later = server.send_user_message(CHAT, text)
    assert f"ok: {text}" in _final(system, later).text
    wait_until(lambda: _settled(system), 30)


def test_a_replaced_prompt_is_not_answered_when_the_transport_dies_mid_run(
    system: System, server: Any, fake_codex: Any
) -> None:
    """As in the reference, a prompt replaced by a newer one while coalescing gets no reply of
    its own: the newer prompt's run answers. A transport killed during that run must not add
    an ``interrupted`` reply to the replaced prompt (its handling was over when replaced)."""
    system.start(forward_coalesce_s=COALESCE_S)
    replaced = server.send_user_message(CHAT, "first draft")
    prompt = server.send_user_message(CHAT, "wait gate_replaced")
    wait_until(lambda: fake_codex.calls(), 30)
    system.wait_bot(lambda m: m.reply_to_message_id == prompt["message_id"])
    _kill_transport(system)
    fake_codex.open_gate("gate_replaced")
    assert "ok: wait gate_replaced" in _final(system, prompt).text
    _after_a_later_update(system, server, "after the kill")
    assert [c["prompt"] for c in fake_codex.calls()] == ["wait gate_replaced", "after the kill"]
    assert _replies(server, replaced) == []
    finals = [m for m in _replies(server, prompt) if m.text.startswith(("done", "interrupted"))]
    assert len(finals) == 1


def test_album_files_are_answered_by_the_captions_run_when_the_transport_dies_mid_run(
    system: System, server: Any, fake_codex: Any, tmp_path: Path
) -> None:
    """The files of an album are handled as the captioned one (its run replies to it): the
    other files must not get an ``interrupted`` reply when the transport dies during it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    system.start(
        telegram=["media_group_debounce_s = 0.3"],
        tables=[
            "[transports.telegram.files]",
            "enabled = true",
            'auto_put_mode = "prompt"',
            "[projects.repo]",
            f'path = "{repo}"',
        ],
    )
    album = [
        server.send_user_document(
            CHAT, body, file_name=name, media_group_id="held1", caption=caption
        )
        for name, body, caption in [
            ("one.txt", b"1", None),  # the first file, not the captioned one
            ("two.txt", b"2", "/repo wait gate_album"),
            ("three.txt", b"3", None),
        ]
    ]
    captioned = album[1]
    wait_until(lambda: fake_codex.calls(), 30)
    system.wait_bot(lambda m: m.reply_to_message_id == captioned["message_id"])
    _kill_transport(system)
    fake_codex.open_gate("gate_album")
    assert "done" in _final(system, captioned).text
    _after_a_later_update(system, server, "after the album")
    assert len(fake_codex.calls()) == 2
    for other in (album[0], album[2]):
        assert _replies(server, other) == []
    assert len([m for m in _replies(server, captioned) if m.text.startswith("done")]) == 1


def test_a_prompt_still_coalescing_at_a_clean_stop_is_answered_after_the_restart(
    system: System, server: Any, fake_codex: Any
) -> None:
    """SIGTERM (systemd stop/restart) while a confirmed prompt waits in its coalescing
    window: it is not run, and the restarted service answers it ``interrupted`` once."""
    system.start(forward_coalesce_s=30)
    waiting = server.send_user_message(CHAT, "still coalescing")
    wait_until(lambda: system.status()["open_intakes"] == 1, 30)
    system.stop()
    assert server.pending_updates() == 0  # confirmed to Telegram: not offered again
    system.start(forward_coalesce_s=30)
    reply = system.wait_bot(lambda m: m.reply_to_message_id == waiting["message_id"], 30)
    assert reply.text.startswith("interrupted") and INTAKE_LOST_ERROR in reply.text
    wait_until(lambda: _settled(system), 30)
    assert len(_replies(server, waiting)) == 1
    assert fake_codex.calls() == []


def test_a_prompt_still_coalescing_when_the_transport_is_restarted_is_answered_once(
    system: System, server: Any, fake_codex: Any
) -> None:
    """``takopictl restart telegram`` stops the transport worker cleanly while a confirmed
    prompt waits in its coalescing window: cut short, it must stay owed with the supervisor
    (not be reported handled), so the successor's supervisor answers it ``interrupted``."""
    system.start(forward_coalesce_s=30)
    waiting = server.send_user_message(CHAT, "coalescing at restart")
    wait_until(lambda: system.status()["open_intakes"] == 1, 30)
    old = system.worker("transport")
    socket_path = resolve_paths(system.config_path, create=False).control_socket
    answer = request(socket_path, "restart", {"names": ["telegram"]})
    assert answer["ok"], answer
    wait_until(
        lambda: (w := system.worker("transport"))["pid"] != old["pid"] and w["state"] == "ready",
        30,
    )
    # a later update tells the supervisor the old one is not coming back: owed at once
    later = server.send_user_message(CHAT, "/ctx")
    reply = system.wait_bot(lambda m: m.reply_to_message_id == waiting["message_id"], 30)
    assert reply.text.startswith("interrupted") and INTAKE_LOST_ERROR in reply.text
    system.wait_bot(lambda m: m.reply_to_message_id == later["message_id"], 30)
    wait_until(lambda: _settled(system), 30)
    assert len(_replies(server, waiting)) == 1
    assert fake_codex.calls() == []
