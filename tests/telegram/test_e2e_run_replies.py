"""End to end: the messages of runs that wait or cannot start — the ``queued`` placeholder
of every resumed follow-up (I-8), and the replies when the engine is unavailable, unknown,
or the working directory cannot be prepared (H-7)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.claude import build_runner as build_claude
from takopi.runners.codex import build_runner as build_codex
from takopi.telegram.bridge import CANCEL_CALLBACK_DATA
from takopi.transport_runtime import TransportRuntime
from tests.telegram.conftest import CHAT

pytestmark = pytest.mark.timeout(90)

QUEUED_RE = re.compile(r"queued · codex · 0s")


def _first_text(message: Any) -> str:
    """What a message said when it was sent (``edits`` keeps the earlier texts)."""
    return message.edits[0] if message.edits else message.text


def _placeholder_for(h, server, user_msg_id: int):
    """The silent ``queued`` message sent in reply to ``user_msg_id`` (even if already
    edited or deleted)."""
    return h.wait_bot_message(
        CHAT,
        lambda m: m.reply_to_message_id == user_msg_id and _first_text(m).startswith("queued"),
        include_deleted=True,
    )


def _queued_request(server, user_msg_id: int) -> dict[str, Any]:
    (params,) = [
        p
        for p in server.calls("sendMessage")
        if p.get("reply_to_message_id") == user_msg_id and str(p.get("text")).startswith("queued")
    ]
    return params


def _markup(params: dict[str, Any]) -> dict[str, Any]:
    markup = params.get("reply_markup")
    return json.loads(markup) if isinstance(markup, str) else markup


def test_every_resumed_follow_up_gets_a_queued_placeholder(server, fake_codex, harness_factory):
    """Reference: a follow-up to an idle thread first gets a silent
    ``queued · <engine> · 0s`` message with a cancel button, which the run then edits."""
    h = harness_factory().start()
    first = server.send_user_message(CHAT, "first")
    final1 = h.final_for(CHAT, first["message_id"])
    follow = server.send_user_message(CHAT, "second", reply_to=final1.message_id)
    final2 = h.final_for(CHAT, follow["message_id"])
    assert "ok: second (resumed " in final2.text
    placeholder = _placeholder_for(h, server, follow["message_id"])
    assert QUEUED_RE.match(_first_text(placeholder)), placeholder
    assert placeholder.disable_notification
    params = _queued_request(server, follow["message_id"])
    assert _markup(params)["inline_keyboard"][0][0]["callback_data"] == CANCEL_CALLBACK_DATA
    # the run edited the placeholder into its progress message, then the final replaced it
    assert placeholder.edits and placeholder.message_id != final2.message_id
    server.wait_for(lambda: server.message(CHAT, placeholder.message_id).deleted)
    # only the follow-up was queued: a new thread never gets a placeholder
    queued = [p for p in server.calls("sendMessage") if str(p.get("text")).startswith("queued")]
    assert [p["reply_to_message_id"] for p in queued] == [follow["message_id"]]


def test_placeholder_becomes_the_final_with_final_notify_off(server, fake_codex, harness_factory):
    h = harness_factory(final_notify=False).start()
    first = server.send_user_message(CHAT, "first")
    final1 = h.final_for(CHAT, first["message_id"])
    follow = server.send_user_message(CHAT, "again", reply_to=final1.message_id)
    final2 = h.final_for(CHAT, follow["message_id"])
    placeholder = _placeholder_for(h, server, follow["message_id"])
    # one message: queued -> starting/working -> done
    assert placeholder.message_id == final2.message_id
    assert QUEUED_RE.match(placeholder.edits[0])
    assert any(t.startswith(("starting", "working")) for t in placeholder.edits[1:])
    assert final2.buttons == []


def test_chat_session_auto_resume_is_queued_too(server, fake_codex, harness_factory):
    h = harness_factory(session_mode="chat", show_resume_line=False).start()
    one = server.send_user_message(CHAT, "one")
    h.final_for(CHAT, one["message_id"])
    two = server.send_user_message(CHAT, "two")
    h.final_for(CHAT, two["message_id"])
    placeholder = _placeholder_for(h, server, two["message_id"])
    # the resume line stays hidden in the placeholder as everywhere in chat mode
    assert _first_text(placeholder) == "queued · codex · 0s"
    assert fake_codex.calls()[1]["resume"] is not None


# --------------------------------------------------------------------------- cannot start


def _runtime(tmp_path: Path) -> TransportRuntime:
    """codex runs; claude is known (it parses its resume lines) but its CLI is missing."""
    web = tmp_path / "web"
    web.mkdir(exist_ok=True)
    return TransportRuntime(
        router=AutoRouter(
            [
                RunnerEntry(
                    engine="claude",
                    runner=build_claude({}, None),
                    status="missing_cli",
                    issue="claude not found on PATH",
                ),
                RunnerEntry(engine="codex", runner=build_codex({}, None)),
            ],
            default_engine="codex",
        ),
        projects=ProjectsConfig(projects={"web": ProjectConfig(alias="web", path=web)}),
        config_path=tmp_path / "takopi.toml",
    )


def test_unavailable_engine_error_with_and_without_resume(
    server, fake_codex, harness_factory, tmp_path
):
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    # a new thread: header, the issue on one line, no footer (not even the ctx line)
    new = server.send_user_message(CHAT, "/claude /web hello")
    reply = h.reply_to(CHAT, new["message_id"])
    assert reply.text == "error · claude · 0s\n\nerror: claude not found on PATH"
    assert not reply.disable_notification and reply.buttons == []
    # resuming a claude thread: the resume line is kept, so the session is not lost
    resume = server.send_user_message(CHAT, "`claude --resume sess-42`\nkeep going")
    err = h.reply_to(CHAT, resume["message_id"], prefix="error")
    assert err.text == (
        "error · claude · 0s\n\nerror: claude not found on PATH\n\nclaude --resume sess-42"
    )
    # its queued placeholder was replaced by the error
    placeholder = _placeholder_for(h, server, resume["message_id"])
    assert _first_text(placeholder).startswith("queued · claude · 0s")
    server.wait_for(lambda: server.message(CHAT, placeholder.message_id).deleted)
    assert fake_codex.calls() == []


def test_unavailable_engine_hides_the_resume_line_in_chat_mode(
    server, fake_codex, harness_factory, tmp_path
):
    h = harness_factory(
        runtime=_runtime(tmp_path), session_mode="chat", show_resume_line=False
    ).start()
    resume = server.send_user_message(CHAT, "`claude --resume sess-43`\nkeep going")
    err = h.reply_to(CHAT, resume["message_id"], prefix="error")
    assert err.text == "error · claude · 0s\n\nerror: claude not found on PATH"


def test_working_directory_errors_are_plain_error_replies(
    server, fake_codex, harness_factory, tmp_path
):
    """A branch of a project that is not a git repository cannot get a worktree: the user gets
    ``error:`` and the reason, without a run header (as the reference's cwd errors)."""
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    msg = server.send_user_message(CHAT, "/web @feat go")
    reply = h.reply_to(CHAT, msg["message_id"])
    assert reply.text == "error: cannot determine base branch for new worktree"
    assert fake_codex.calls() == []
