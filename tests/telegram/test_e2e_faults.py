"""End to end: overflow, Bot API faults, unauthorized senders, malformed updates, offline
backlog, pending deliveries, state corruption and secrets in logs."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from takopi.telegram.bridge import CANCEL_MARKUP
from takopi.telegram.client_api import NOT_MODIFIED
from takopi.telegram.loop import BACKLOG_NOTICE
from tests.fakes.bot_api import utf16_len
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT, make_runtime
from tests.telegram.intake_runtime import IntakeRuntime

pytestmark = pytest.mark.timeout(120)

RESUME_RE = re.compile(r"codex resume (thread-[0-9a-f]+)")
GROUP = -2002


def test_long_answer_is_trimmed_keeping_the_footer(server, fake_codex, harness_factory):
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "long 10000")
    final = h.final_for(CHAT, user["message_id"])
    assert utf16_len(final.text) <= 4096
    assert "…" in final.text
    assert RESUME_RE.search(final.text.splitlines()[-1])  # footer last and whole
    assert not server.errors


def test_long_answer_is_split_with_continued_headers(server, fake_codex, harness_factory):
    h = harness_factory(message_overflow="split").start()
    user = server.send_user_message(CHAT, "long 10000")
    first = h.final_for(CHAT, user["message_id"])
    thread = RESUME_RE.search(first.text).group(1)

    def chunks() -> list[Any]:
        return [
            m
            for m in server.bot_messages(CHAT)
            if m.reply_to_message_id == user["message_id"] and "continued (" in m.text
        ]

    rest = server.wait_for(lambda: len(chunks()) >= 2 and chunks())
    total = len(rest) + 1
    assert total >= 3
    for i, chunk in enumerate(rest, start=2):
        assert f"· continued ({i}/{total})" in chunk.text.splitlines()[0]
        assert RESUME_RE.search(chunk.text).group(1) == thread
        assert utf16_len(chunk.text) <= 4096
    # every chunk's code fences are balanced: pre entities never swallow the footer
    for msg in [first, *rest]:
        for ent in msg.entities:
            if ent["type"] == "pre":
                body = msg.text.encode("utf-16-le")[
                    ent["offset"] * 2 : (ent["offset"] + ent["length"]) * 2
                ]
                assert "codex resume" not in body.decode("utf-16-le")
    assert not server.errors
    # together the chunks carry the whole answer: the last paragraph number is present
    assert "Paragraph" in rest[-1].text


def test_429_storm_loses_no_final_message(server, fake_codex, harness_factory):
    h = harness_factory().start()
    server.inject("429", method="sendMessage", count=4, retry_after=0.3)
    server.inject("429", method="editMessageText", count=4, retry_after=0.3)
    users = [server.send_user_message(CHAT, f"storm {i}") for i in range(3)]
    for user in users:
        final = h.final_for(CHAT, user["message_id"], timeout=60)
        assert "ok: storm" in final.text
    assert sum(1 for e in server.errors if e[1] == 429) >= 4


def test_5xx_bursts_and_dropped_connections_lose_no_final_message(
    server, fake_codex, harness_factory
):
    h = harness_factory().start()
    server.inject("5xx", method="sendMessage", count=3, status=502)
    server.inject("drop", method="sendMessage", count=2)
    server.inject("5xx", method="editMessageText", count=2, status=500)
    server.inject("5xx", method="getUpdates", count=2, status=503)
    user = server.send_user_message(CHAT, "through the storm")
    final = h.final_for(CHAT, user["message_id"], timeout=60)
    assert "ok: through the storm" in final.text
    assert any(e[1] == 502 for e in server.errors)


def test_final_survives_when_replacing_send_keeps_failing(server, fake_codex, harness_factory):
    """If sending the final reply fails for good, the progress message becomes the final."""
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "sleep 1.5")
    progress = h.reply_to(CHAT, user["message_id"], contains="sleep")
    server.inject("error", method="sendMessage", count=1, description="Bad Request: boom")
    final = h.wait_bot_message(
        CHAT,
        lambda m: m.message_id == progress.message_id and m.text.startswith("done"),
        timeout=30,
    )
    assert "ok: sleep 1.5" in final.text
    assert final.buttons == []


def test_unauthorized_senders_and_unknown_chats_are_ignored(
    server, fake_codex, harness_factory, log_capture
):
    server.add_chat(GROUP)
    server.add_chat(5555)  # a private chat that is not configured
    h = harness_factory(chat_id=GROUP, allowed_user_ids=[1001]).start()
    h.wait_bot_message(GROUP, lambda m: "takopi is ready" in m.text)
    server.send_user_message(GROUP, "from a stranger", user_id=4242)
    server.send_user_message(5555, "from another chat")
    ok = server.send_user_message(GROUP, "from the owner", user_id=1001)
    final = h.final_for(GROUP, ok["message_id"])
    assert "ok: from the owner" in final.text
    # allowed users' DMs are accepted too
    dm = server.send_user_message(1001, "dm")
    assert "ok: dm" in h.final_for(1001, dm["message_id"]).text
    assert [c["prompt"] for c in fake_codex.calls()] == ["from the owner", "dm"]
    assert server.bot_messages(5555) == []
    assert not any(
        m.reply_to_message_id for m in server.bot_messages(GROUP) if "stranger" in m.text
    )
    reasons = [f.get("reason") for f in log_capture.events("update.ignored")]
    assert "sender_not_allowed" in reasons and "chat_not_allowed" in reasons


def test_malformed_updates_are_skipped_with_a_log_line(
    server, fake_codex, harness_factory, log_capture
):
    h = harness_factory().start()
    server.push_update({"message": "not an object"})
    server.push_update({"message": {"message_id": "x", "chat": {"id": CHAT}}})
    server.push_update({"message": {"message_id": 99, "chat": None, "text": "hi"}})
    server.push_update({"callback_query": {"id": 5}})
    server.push_update({"update_id": "garbage", "message": {"message_id": 98}})
    user = server.send_user_message(CHAT, "after garbage")
    assert "ok: after garbage" in h.final_for(CHAT, user["message_id"]).text
    malformed = log_capture.events("telegram.update.malformed")
    assert len(malformed) >= 4
    assert all(f.get("reason") for f in malformed)


def test_duplicate_updates_run_once(server, fake_codex, harness_factory):
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "once")
    # the same message re-delivered under new update ids
    server.push_update({"message": user})
    server.push_update({"message": user})
    h.final_for(CHAT, user["message_id"])
    marker = server.send_user_message(CHAT, "marker")
    h.final_for(CHAT, marker["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["once", "marker"]


def test_offline_backlog_is_notified_not_run(server, fake_codex, harness_factory):
    old = server.send_user_message(CHAT, "sent while down", date=int(time.time()) - 120)
    h = harness_factory().start()
    notice = h.reply_to(CHAT, old["message_id"])
    assert notice.text == BACKLOG_NOTICE
    fresh = server.send_user_message(CHAT, "fresh")
    h.final_for(CHAT, fresh["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["fresh"]


def test_offline_backlog_drop_and_run(server, fake_codex, harness_factory, tmp_path):
    old = server.send_user_message(CHAT, "dropped while down", date=int(time.time()) - 120)
    h = harness_factory(offline_backlog="drop").start()
    fresh = server.send_user_message(CHAT, "fresh")
    h.final_for(CHAT, fresh["message_id"])
    assert not [m for m in server.bot_messages(CHAT) if m.reply_to_message_id == old["message_id"]]
    h.stop()
    old2 = server.send_user_message(CHAT, "run me anyway", date=int(time.time()) - 120)
    h2 = harness_factory(offline_backlog="run").start()
    assert "ok: run me anyway" in h2.final_for(CHAT, old2["message_id"]).text
    assert [c["prompt"] for c in fake_codex.calls()] == ["fresh", "run me anyway"]


class _JournalRuntime:
    """The in-process runtime plus the supervisor's delivery-journal extension."""

    def __init__(self, inner: Any, records: list[dict[str, Any]]) -> None:
        self._inner = inner
        self.records = records
        self.acked: list[str] = []

    def pending_deliveries(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["delivery_id"] not in self.acked]

    def ack_delivery(self, delivery_id: str) -> None:
        self.acked.append(delivery_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_pending_deliveries_are_sent_at_startup(server, fake_codex, harness_factory, tmp_path):
    user = server.send_user_message(CHAT, "a question asked before the crash")
    other = server.send_user_message(CHAT, "another")
    # the progress message the crashed worker had posted
    progress = server.handle(
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "working · codex · 5s",
            "reply_to_message_id": user["message_id"],
        },
    )
    server.clear_faults()
    records = [
        {
            "delivery_id": "run-1",
            "transport": "telegram",
            "engine": "codex",
            "status": "done",
            "answer": "the **answer** computed while the transport was down",
            "error": None,
            "resume_line": "`codex resume thread-abc`",
            "context_line": None,
            "channel_id": CHAT,
            "message_id": user["message_id"],
            "thread_id": None,
            "progress_message_id": progress["message_id"],
        },
        {
            "delivery_id": "run-2",
            "kind": "interrupted",
            "engine": "codex",
            "answer": "",
            "error": None,
            "resume_line": "`codex resume thread-def`",
            "channel_id": CHAT,
            "reply_to_message_id": other["message_id"],
        },
        {"delivery_id": "run-3", "transport": "console", "channel_id": "console", "status": "done"},
    ]
    config_path = tmp_path / "takopi.toml"
    runtime = _JournalRuntime(make_runtime(config_path), records)
    h = harness_factory(runtime=runtime, offline_backlog="drop").start()
    done = h.reply_to(CHAT, user["message_id"], prefix="done")
    assert "the answer computed while the transport was down" in done.text
    assert "codex resume thread-abc" in done.text
    assert any(e["type"] == "bold" for e in done.entities)
    interrupted = h.reply_to(CHAT, other["message_id"])
    assert interrupted.text.startswith("interrupted · codex")
    assert "codex resume thread-def" in interrupted.text
    server.wait_for(lambda: server.message(CHAT, progress["message_id"]).deleted)
    assert sorted(runtime.acked) == ["run-1", "run-2"]
    assert fake_codex.calls() == []


def _done_record(delivery_id: str, user_id: int, progress_id: int) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "transport": "telegram",
        "engine": "codex",
        "status": "done",
        "answer": f"answer of {delivery_id}",
        "resume_line": "`codex resume thread-abc`",
        "channel_id": CHAT,
        "message_id": user_id,
        "progress_message_id": progress_id,
    }


def test_pending_deliveries_edit_the_progress_message_when_finals_are_edits(
    server, fake_codex, harness_factory, tmp_path
):
    # final_notify off: a live final is an edit of the progress message, so is a journaled
    # one — delivering it again (the ack was lost with a killed worker) cannot add a message.
    user = server.send_user_message(CHAT, "asked before the crash")
    gone = server.send_user_message(CHAT, "its progress message was deleted")
    progress = server.handle(
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "working · codex · 5s",
            "reply_to_message_id": user["message_id"],
        },
    )
    deleted = server.handle(
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "working · codex · 1s",
            "reply_to_message_id": gone["message_id"],
        },
    )
    server.handle("deleteMessage", {"chat_id": CHAT, "message_id": deleted["message_id"]})
    records = [
        _done_record("run-1", user["message_id"], progress["message_id"]),
        _done_record("run-1", user["message_id"], progress["message_id"]),  # redelivered
        _done_record("run-2", gone["message_id"], deleted["message_id"]),
    ]
    runtime = _JournalRuntime(make_runtime(tmp_path / "takopi.toml"), records)
    harness_factory(runtime=runtime, offline_backlog="drop", final_notify=False).start()
    wait_until(lambda: len(runtime.acked) == 3, 30)

    def replies(user_id: int) -> list[Any]:
        return [m for m in server.bot_messages(CHAT) if m.reply_to_message_id == user_id]

    edited = replies(user["message_id"])
    assert [m.message_id for m in edited] == [progress["message_id"]]
    assert edited[0].text.startswith("done · codex")
    assert "answer of run-1" in edited[0].text
    # the progress message was gone: the outcome is sent as a new reply instead
    fallback = replies(gone["message_id"])
    assert len(fallback) == 1 and fallback[0].message_id != deleted["message_id"]
    assert "answer of run-2" in fallback[0].text


def _long_answer() -> str:
    return "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 12 for i in range(60))


def _long_answer_owed(server: Any, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A question, its progress message, and the journaled long answer still owed for it."""
    user = server.send_user_message(CHAT, f"a long question ({run_id})")
    progress = server.handle(
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "working · codex · 5s",
            "reply_to_message_id": user["message_id"],
        },
    )
    record = {**_done_record(run_id, user["message_id"], progress["message_id"])}
    record["answer"] = _long_answer()
    return progress, record


def test_redelivered_split_answer_sends_its_overflow_once(
    server, fake_codex, harness_factory, tmp_path
):
    # A long answer journaled for a chat whose finals are edits, split into several messages.
    # Delivered once, then again by the next transport (the ack was lost): the progress
    # message then already shows the first part ("message is not modified"), and the
    # overflow parts must not be sent a second time.
    progress, record = _long_answer_owed(server, "run-long")

    def overflow() -> list[Any]:
        return [
            m
            for m in server.bot_messages(CHAT)
            if m.reply_to_message_id == progress["message_id"] and "continued (" in m.text
        ]

    sent: list[int] = []
    for attempt in (1, 2):
        runtime = _JournalRuntime(make_runtime(tmp_path / "takopi.toml"), [record])
        h = harness_factory(
            runtime=runtime, offline_backlog="drop", final_notify=False, message_overflow="split"
        ).start()
        wait_until(lambda rt=runtime: rt.acked == ["run-long"], 30)
        h.stop()
        first = server.message(CHAT, progress["message_id"])
        assert first.text.startswith("done · codex"), attempt
        assert not (first.reply_markup or {}).get("inline_keyboard"), attempt
        sent.append(len(overflow()))
    total = sent[0] + 1
    assert total >= 3
    assert sent == [total - 1, total - 1]
    for i, part in enumerate(overflow(), start=2):
        assert f"continued ({i}/{total})" in part.text.splitlines()[0]
    assert "Paragraph 59" in overflow()[-1].text
    assert any(NOT_MODIFIED in e[2] for e in server.errors)


def test_split_answer_interrupted_while_its_overflow_went_out_is_completed(
    server, fake_codex, harness_factory, tmp_path
):
    # The transport died after the first part was shown (still pending: the progress
    # keyboard kept) and before the last overflow part went out: the redelivery must send the
    # overflow again rather than trust "the first part is there".
    progress, record = _long_answer_owed(server, "run-cut")
    runtime = _JournalRuntime(make_runtime(tmp_path / "takopi.toml"), [record])
    h = harness_factory(
        runtime=runtime, offline_backlog="drop", final_notify=False, message_overflow="split"
    ).start()
    wait_until(lambda: runtime.acked == ["run-cut"], 30)
    h.stop()
    overflow = [m for m in server.bot_messages(CHAT) if "continued (" in m.text]
    assert len(overflow) >= 2
    first = server.message(CHAT, progress["message_id"])
    server.handle(
        "editMessageText",
        {
            "chat_id": CHAT,
            "message_id": first.message_id,
            "text": first.text,
            "entities": first.entities,
            "reply_markup": CANCEL_MARKUP,
        },
    )
    server.handle("deleteMessage", {"chat_id": CHAT, "message_id": overflow[-1].message_id})

    runtime = _JournalRuntime(make_runtime(tmp_path / "takopi.toml"), [record])
    harness_factory(
        runtime=runtime, offline_backlog="drop", final_notify=False, message_overflow="split"
    ).start()
    wait_until(lambda: runtime.acked == ["run-cut"], 30)
    again = [m for m in server.bot_messages(CHAT) if "continued (" in m.text and not m.deleted]
    assert [m.text for m in again[len(overflow) - 1 :]] == [m.text for m in overflow]
    assert not (server.message(CHAT, progress["message_id"]).reply_markup or {}).get(
        "inline_keyboard"
    )


def test_split_answer_whose_overflow_part_fails_is_sent_anew_not_lost(
    server, fake_codex, harness_factory, tmp_path
):
    # Redelivered into the progress message, a long answer's first overflow part is refused
    # by Telegram: the edit must not be committed as delivered (part 2 would be lost); the
    # whole answer goes out anew instead.
    _progress, record = _long_answer_owed(server, "run-refused")
    server.inject("error", method="sendMessage", description="Bad Request: refused once")
    runtime = _JournalRuntime(make_runtime(tmp_path / "takopi.toml"), [record])
    harness_factory(
        runtime=runtime, offline_backlog="drop", final_notify=False, message_overflow="split"
    ).start()
    wait_until(lambda: runtime.acked == ["run-refused"], 30)
    assert any("refused once" in e[2] for e in server.errors)
    parts = [m.text for m in server.bot_messages(CHAT) if "continued (" in m.text]
    total = int(re.search(r"continued \(\d+/(\d+)\)", parts[0]).group(1))
    for i in range(2, total + 1):
        assert any(f"continued ({i}/{total})" in p for p in parts), (i, total)


def test_corrupt_state_file_is_tolerated(
    server, fake_codex, harness_factory, tmp_path, log_capture
):
    state_path = tmp_path / "telegram_chat_sessions_state.json"
    state_path.write_text("{ this is not json")
    h = harness_factory(session_mode="chat").start()
    user = server.send_user_message(CHAT, "works anyway")
    assert "ok: works anyway" in h.final_for(CHAT, user["message_id"]).text
    backup = tmp_path / "telegram_chat_sessions_state.json.corrupt"
    assert backup.read_text() == "{ this is not json"
    wait_until(lambda: state_path.exists() and "codex" in state_path.read_text())
    data = json.loads(state_path.read_text())
    assert data["version"] == 1
    assert log_capture.events("state.corrupt")


def test_runtime_failures_never_kill_the_loop(
    server, fake_codex, harness_factory, tmp_path, log_capture
):
    class Flaky:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.failures = 2

        def default_context_for_chat(self, chat_id: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                raise RuntimeError("supervisor unreachable")
            return self._inner.default_context_for_chat(chat_id)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    runtime = Flaky(make_runtime(tmp_path / "takopi.toml"))
    h = harness_factory(runtime=runtime).start()
    server.send_user_message(CHAT, "/ctx")
    wait_until(lambda: log_capture.events("telegram.task_failed"))
    first = server.send_user_message(CHAT, "hello")
    err = h.reply_to(CHAT, first["message_id"])
    assert err.text == "error: supervisor unreachable"
    second = server.send_user_message(CHAT, "hello again")
    assert "ok: hello again" in h.final_for(CHAT, second["message_id"]).text


def test_a_backlog_notice_settles_the_message_with_the_supervisor(
    server, fake_codex, harness_factory, tmp_path
):
    """A message a killed transport had taken comes back to its successor as backlog (the
    restart moved the start time): answered with the notice, it must also be reported
    handled, or the supervisor would owe it an 'interrupted' reply as well."""
    old = server.send_user_message(CHAT, "taken by the killed worker", date=int(time.time()) - 5)
    runtime = IntakeRuntime(make_runtime(tmp_path / "takopi.toml"))
    h = harness_factory(runtime=runtime).start()
    notice = h.reply_to(CHAT, old["message_id"])
    assert notice.text == BACKLOG_NOTICE
    wait_until(lambda: old["message_id"] in runtime.handled)
    assert runtime.taken == [old["message_id"]]
    assert fake_codex.calls() == []


def test_a_queued_follow_up_stays_open_until_its_run_ends(
    server, fake_codex, harness_factory, tmp_path
):
    """A follow-up queued behind its thread is plain data in the scheduler: its message must
    stay open with the supervisor (owed a reply if the transport dies) until it has run."""
    runtime = IntakeRuntime(make_runtime(tmp_path / "takopi.toml"))
    h = harness_factory(runtime=runtime).start()
    first = server.send_user_message(CHAT, "wait gate_q")
    progress = h.reply_to(CHAT, first["message_id"], contains="wait gate_q")
    follow = server.send_user_message(CHAT, "then this", reply_to=progress.message_id)
    h.reply_to(CHAT, follow["message_id"], prefix="queued")
    wait_until(lambda: follow["message_id"] in runtime.taken)
    time.sleep(0.3)  # let the handler return: only the queued job may keep it open
    assert follow["message_id"] not in runtime.handled
    fake_codex.open_gate("gate_q")
    h.final_for(CHAT, follow["message_id"])
    wait_until(lambda: follow["message_id"] in runtime.handled)
    assert runtime.handled.count(follow["message_id"]) == 1


def test_a_stopping_loop_confirms_what_it_took_and_leaves_it_owed(
    server, fake_codex, harness_factory, tmp_path
):
    """Stopped while a taken prompt waits in its coalescing window and before the next poll
    confirmed it: the loop confirms it to Telegram (the supervisor answers it 'interrupted';
    offered again to the next start it would be answered twice) and does not report it
    handled (the supervisor must still owe it that reply)."""
    prompt = server.send_user_message(CHAT, "taken, then stopped", date=int(time.time()) + 3600)
    server.inject("slow", method="getUpdates", count=1, delay=0.0)  # hands out the prompt
    server.inject("429", method="getUpdates", count=1, retry_after=60)  # the confirming poll
    runtime = IntakeRuntime(make_runtime(tmp_path / "takopi.toml"))
    h = harness_factory(runtime=runtime, forward_coalesce_s=30).start()
    wait_until(lambda: prompt["message_id"] in runtime.taken)
    wait_until(lambda: any(e[0] == "getUpdates" and e[1] == 429 for e in server.errors))
    assert server.pending_updates() == 1  # taken, not confirmed yet
    h.stop()
    assert server.pending_updates() == 0
    assert prompt["message_id"] not in runtime.handled
    assert fake_codex.calls() == []
