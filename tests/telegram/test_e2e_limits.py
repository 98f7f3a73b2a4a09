"""End to end under Telegram-like flood control: the real transport + codex runner + fake codex
against the fake Bot API enforcing per-chat, per-group and global limits. No run may get a
429 and every run must get its final answer.

Limits and pacing both run ``SCALE`` times faster than Telegram's, so that the scenarios fit in
a test (the full five-minute busy chat at real speed is ``bench/bench_chat_latency.py``).
"""

from __future__ import annotations

import threading

import pytest

from takopi.telegram.pacing import default_interval
from tests.fakes.bot_api import BotApiServer, RateLimits
from tests.telegram.conftest import CHAT

pytestmark = pytest.mark.timeout(120)

SCALE = 10.0


def _scaled_harness(server: BotApiServer, harness_factory):  # type: ignore[no-untyped-def]
    server.enforce_limits(RateLimits(time_scale=SCALE))
    h = harness_factory()
    h.interval_for = lambda c: default_interval(c) / SCALE
    return h.start()


def _progress_replies(server: BotApiServer, user_id: int) -> list:  # type: ignore[type-arg]
    return [
        m
        for m in server.bot_messages(CHAT, include_deleted=True)
        if m.reply_to_message_id == user_id and not m.text.startswith(("done", "error"))
    ]


def test_twenty_parallel_runs_in_one_chat_get_no_429(server, fake_codex, harness_factory):
    h = _scaled_harness(server, harness_factory)
    prompts = [f"sleep 0.{i % 5}" if i % 2 else f"quick {i}" for i in range(20)]
    users = [server.send_user_message(CHAT, p) for p in prompts]
    for prompt, user in zip(prompts, users, strict=True):
        final = h.final_for(CHAT, user["message_id"], timeout=90)
        assert final.text.startswith("done"), final.text
        assert f"ok: {prompt}" in final.text
    # every progress message was replaced by its final answer (sent, then deleted)
    for user in users:
        progress = _progress_replies(server, user["message_id"])
        assert len(progress) == 1
        server.wait_for(lambda p=progress[0]: server.message(CHAT, p.message_id).deleted)
    assert len(fake_codex.calls()) == 20
    assert server.rate_limited() == []


def test_a_busy_chat_gets_no_429(server, fake_codex, harness_factory):
    """Three users keep the chat busy: each sends a prompt as soon as the previous answer
    arrives, mixing quick runs and runs with a command (progress edits), 14 runs each."""
    h = _scaled_harness(server, harness_factory)
    lanes, per_lane = 3, 14
    done: dict[int, list[str]] = {lane: [] for lane in range(lanes)}
    failures: list[BaseException] = []

    def lane(n: int) -> None:
        try:
            for i in range(per_lane):
                prompt = f"sleep 0.3 lane{n} run{i}" if (i + n) % 3 == 0 else f"lane{n} run{i}"
                user = server.send_user_message(CHAT, prompt)
                final = h.final_for(CHAT, user["message_id"], timeout=90)
                done[n].append(final.text)
        except BaseException as exc:  # surfaced by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(110)
    assert not failures, failures
    for n in range(lanes):
        assert len(done[n]) == per_lane
        for i, text in enumerate(done[n]):
            assert text.startswith("done") and f"lane{n} run{i}" in text, text
    assert len(fake_codex.calls()) == lanes * per_lane
    # sends outnumber the chat's budget here: progress edits wait for spare tokens, and the
    # pending edit of a finished run is dropped when its final answer replaces it
    assert len(server.calls("sendMessage")) == 1 + 2 * lanes * per_lane
    assert server.rate_limited() == []
