"""End to end: the real telegram transport + the codex runner + a fake codex CLI, against the
fake Bot API server."""

from __future__ import annotations

import re

import pytest

from tests.telegram.conftest import CHAT

pytestmark = pytest.mark.timeout(60)

RESUME_RE = re.compile(r"codex resume (thread-[0-9a-f]+)")


def test_prompt_gets_progress_then_final_with_resume_line(server, fake_codex, harness_factory):
    h = harness_factory(real_pacing=True).start()
    user = server.send_user_message(CHAT, "hello there")
    final = h.final_for(CHAT, user["message_id"])
    assert final.text.startswith("done · codex")
    assert "ok: hello there" in final.text
    match = RESUME_RE.search(final.text)
    assert match is not None
    # the resume line is rendered as inline code
    code = [e for e in final.entities if e["type"] == "code"]
    assert code, final.entities
    assert not final.disable_notification
    assert final.buttons == []
    # the progress message was sent first, silently, with a cancel button, then deleted
    all_msgs = server.bot_messages(CHAT, include_deleted=True)
    progress = [
        m for m in all_msgs if m.reply_to_message_id == user["message_id"] and m is not final
    ]
    assert progress, all_msgs
    server.wait_for(lambda: server.message(CHAT, progress[0].message_id).deleted)
    assert progress[0].disable_notification
    first_text = progress[0].edits[0] if progress[0].edits else progress[0].text
    assert first_text.startswith("starting · codex")
    calls = fake_codex.calls()
    assert [c["prompt"] for c in calls] == ["hello there"]
    assert calls[0]["resume"] is None
    # link previews are off on every send and edit
    for params in server.calls("sendMessage") + server.calls("editMessageText"):
        assert params.get("link_preview_options") == {"is_disabled": True}
