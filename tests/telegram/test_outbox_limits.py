"""The outbox against the fake Bot API with Telegram-like flood control enforced: the fake
answers 429 to writes over the limits, and the outbox never makes it."""

from __future__ import annotations

import anyio
import pytest

from takopi.telegram.client import TelegramClient
from takopi.telegram.client_api import BotApi, TelegramRetryAfter
from takopi.telegram.pacing import default_interval
from tests.fakes.bot_api import BotApiServer, RateLimits
from tests.telegram.conftest import CHAT

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

GROUP = -100777


async def _refused(api: BotApi, method: str, **params: object) -> float | None:
    """``retry_after`` when the fake refuses the call with 429, ``None`` when it passes."""
    try:
        await api.request(method, dict(params))
    except TelegramRetryAfter as exc:
        return exc.retry_after
    return None


async def test_the_fake_enforces_chat_group_and_global_limits(server: BotApiServer):
    server.add_chat(GROUP)
    api = BotApi(server.token, api_url=server.base_url)
    try:
        # a private chat: a burst of 3, then one per 10 s (slow enough to never pass by load)
        server.enforce_limits(RateLimits(chat_per_s=0.1, chat_burst=3))
        sent = []
        for i in range(3):
            assert await _refused(api, "sendMessage", chat_id=CHAT, text=f"m{i}") is None
            sent.append(server.bot_messages(CHAT)[-1].message_id)
        assert await _refused(api, "sendMessage", chat_id=CHAT, text="m3") == 10
        assert await _refused(api, "editMessageText", chat_id=CHAT, message_id=sent[0], text="x")
        # deletes are not charged to the chat; the refused send was not counted
        assert await _refused(api, "deleteMessage", chat_id=CHAT, message_id=sent[0]) is None
        assert [m.text for m in server.bot_messages(CHAT)] == ["m1", "m2"]

        # a group: 20 per minute (here 4), whatever the per-chat burst
        server.enforce_limits(RateLimits(chat_per_s=100, chat_burst=100, group_per_minute=4))
        for i in range(4):
            assert await _refused(api, "sendMessage", chat_id=GROUP, text=f"g{i}") is None
        retry = await _refused(api, "sendMessage", chat_id=GROUP, text="g4")
        assert retry is not None and retry >= 1

        # the whole bot: every write counts, deletes included
        server.enforce_limits(
            RateLimits(chat_per_s=100, chat_burst=100, global_per_s=3, time_scale=0.01)
        )
        other = CHAT + 1
        server.add_chat(other)
        assert await _refused(api, "sendMessage", chat_id=other, text="a") is None
        victim = server.bot_messages(other)[-1].message_id
        assert await _refused(api, "deleteMessage", chat_id=other, message_id=victim) is None
        assert await _refused(api, "sendMessage", chat_id=CHAT, text="b") is None
        assert await _refused(api, "sendMessage", chat_id=GROUP, text="c") is not None
        assert len(server.rate_limited()) == 4
    finally:
        await api.close()


async def test_an_idle_chat_writes_without_waiting_for_a_pacing_slot(server: BotApiServer):
    """Progress message, an edit, the final answer and the progress delete, on an idle private
    chat with Telegram's real limits: nothing waits for the bucket, nothing gets 429."""
    server.enforce_limits(RateLimits())
    async with TelegramClient(server.token, api_url=server.base_url) as bot:
        progress = await bot.send_message(CHAT, "starting")
        assert progress is not None
        await bot.edit_message_text(CHAT, progress["message_id"], "working", wait=False)
        final = await bot.send_message(CHAT, "done", replace_message_id=progress["message_id"])
        assert final is not None
        with anyio.fail_after(10):
            while not server.message(CHAT, progress["message_id"]).deleted:
                await anyio.sleep(0.01)
        stats = bot.outbox.stats
        # the edit had no spare token and was superseded by the final answer
        assert server.calls("editMessageText") == []
        assert stats.started == 3 and stats.paced == 0 and stats.retry_after == 0
        # a new run right after still finds a token for its progress message
        assert await bot.send_message(CHAT, "next") is not None
        assert bot.outbox.stats.paced == 0
    assert server.rate_limited() == []
    assert [m.text for m in server.bot_messages(CHAT)] == ["done", "next"]


@pytest.mark.parametrize("chat_id", [CHAT, GROUP], ids=["private", "group"])
async def test_a_flood_of_writes_in_one_chat_gets_no_429(server: BotApiServer, chat_id: int):
    """40 sends (each followed by two edits and, for half, a delete) queued at once; limits
    and pacing both run 20x faster than Telegram's so that a minute takes 3 s."""
    scale = 20.0
    server.add_chat(chat_id)
    server.enforce_limits(RateLimits(time_scale=scale))
    count = 40

    async def one(bot: TelegramClient, i: int) -> None:
        sent = await bot.send_message(chat_id, f"m{i}")
        assert sent is not None
        mid = sent["message_id"]
        await bot.edit_message_text(chat_id, mid, f"m{i} edited", wait=False)
        await bot.edit_message_text(chat_id, mid, f"m{i} edited again")
        if i % 2:
            assert await bot.delete_message(chat_id, mid)

    async with TelegramClient(
        server.token,
        api_url=server.base_url,
        interval_for=lambda c: default_interval(c) / scale,
    ) as bot:
        with anyio.fail_after(50):
            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(one, bot, i)
        assert bot.outbox.stats.paced > 0  # the flood did wait for tokens
    assert server.rate_limited() == []
    texts = sorted(m.text for m in server.bot_messages(chat_id))
    assert texts == sorted(f"m{i} edited again" for i in range(0, count, 2))
    assert len(server.calls("sendMessage")) == count
