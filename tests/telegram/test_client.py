"""TelegramClient / BotApi against the fake Bot API server."""

from __future__ import annotations

import anyio
import pytest

from takopi.telegram.client import TelegramClient
from takopi.telegram.client_api import BotApi, TelegramApiError, TelegramRetryAfter
from takopi.telegram.onboarding import capture_chat_id, check_bot_token, mask_token
from tests.telegram.conftest import CHAT

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _fast(_chat: int | None) -> float:
    return 0.0


async def test_send_edit_delete_and_not_modified(server):
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        sent = await bot.send_message(
            CHAT, "hello", entities=[{"type": "bold", "offset": 0, "length": 5}]
        )
        assert sent is not None
        mid = sent["message_id"]
        assert await bot.edit_message_text(CHAT, mid, "hello 2") is not None
        # identical content: Telegram answers 400 "not modified"; that is a success here
        assert await bot.edit_message_text(CHAT, mid, "hello 2") is not None
        assert server.message(CHAT, mid).edits == ["hello"]
        assert await bot.delete_message(CHAT, mid) is True
        assert server.message(CHAT, mid).deleted
        # a second delete fails and is reported as such (logged, no exception)
        assert await bot.delete_message(CHAT, mid) is False
    assert any("not modified" in e[2] for e in server.errors)


async def test_too_long_text_is_refused_and_reported(server):
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        assert await bot.send_message(CHAT, "x" * 4097) is None
        assert await bot.send_message(CHAT, "😀" * 2049) is None  # 4098 UTF-16 units
        assert await bot.send_message(CHAT, "😀" * 2048) is not None
    assert [e[2] for e in server.errors].count("Bad Request: message is too long") == 2


async def test_replace_deletes_the_old_message_after_sending(server):
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        progress = await bot.send_message(CHAT, "working")
        final = await bot.send_message(CHAT, "done", replace_message_id=progress["message_id"])
        assert final["message_id"] != progress["message_id"]
        await anyio.sleep(0)
        with anyio.fail_after(5):
            while not server.message(CHAT, progress["message_id"]).deleted:
                await anyio.sleep(0.02)


async def test_replace_falls_back_to_editing_when_sending_fails(server):
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        progress = await bot.send_message(
            CHAT,
            "working",
            reply_markup={"inline_keyboard": [[{"text": "cancel", "callback_data": "x"}]]},
        )
        server.inject("error", method="sendMessage", description="Bad Request: nope")
        result = await bot.send_message(
            CHAT, "final answer", replace_message_id=progress["message_id"]
        )
        assert result is not None and result["message_id"] == progress["message_id"]
        msg = server.message(CHAT, progress["message_id"])
        assert msg.text == "final answer" and not msg.deleted and msg.buttons == []


async def test_429_on_reads_raises_retry_after(server):
    server.inject("429", method="getUpdates", retry_after=7)
    async with TelegramClient(server.token, api_url=server.base_url) as bot:
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.get_updates(None, timeout_s=0)
        assert info.value.retry_after == 7
        server.inject("429", method="getUpdates", retry_after=None)
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.get_updates(None, timeout_s=0)
        assert info.value.retry_after == 5.0  # default when missing
        server.inject("5xx", method="getUpdates")
        assert await bot.get_updates(None, timeout_s=0) is None


async def test_long_poll_returns_new_updates_and_confirms_with_offset(server):
    api = BotApi(server.token, api_url=server.base_url)
    try:
        server.send_user_message(CHAT, "one")
        first = await api.get_updates(offset=None, timeout_s=0)
        assert [u["message"]["text"] for u in first] == ["one"]
        offset = first[-1]["update_id"] + 1

        async def later() -> None:
            await anyio.sleep(0.1)
            server.send_user_message(CHAT, "two")

        async with anyio.create_task_group() as tg:
            tg.start_soon(later)
            second = await api.get_updates(offset=offset, timeout_s=5)
        assert [u["message"]["text"] for u in second] == ["two"]
        assert server.pending_updates() == 1  # "one" confirmed, "two" not yet
    finally:
        await api.close()


async def test_api_errors_map_to_exceptions(server):
    api = BotApi(server.token, api_url=server.base_url)
    try:
        with pytest.raises(TelegramApiError) as info:
            await api.send_message(chat_id=999, text="x")
        assert info.value.error_code == 400 and "chat not found" in info.value.description
        assert await api.call_safe("getChat", {"chat_id": 999}) is None
        chat = await api.get_chat(CHAT)
        assert chat["type"] == "private"
        member = await api.get_chat_member(CHAT, CHAT)
        assert member["status"] == "member"
        assert await api.set_my_commands([{"command": "x", "description": "y"}]) is True
        assert server.commands == [{"command": "x", "description": "y"}]
    finally:
        await api.close()


async def test_onboarding_helpers(server):
    me = await check_bot_token(server.token, api_url=server.base_url)
    assert me is not None and me.username == server.bot_username
    assert await check_bot_token("1:bad", api_url=server.base_url) is None
    assert mask_token("123456789:ABCdefGHIjklMNO") == "123456789...klMNO"
    assert mask_token("short") == "*****"
    server.send_user_message(CHAT, "old backlog")

    async def later() -> None:
        await anyio.sleep(0.2)
        server.add_chat(-5005)
        server.send_user_message(-5005, "/start", user_id=77)

    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        captured = await capture_chat_id(
            server.token, api_url=server.base_url, poll_timeout_s=1, timeout_s=10
        )
    assert captured is not None and captured.chat_id == -5005 and captured.sender_id == 77


async def test_lone_surrogates_are_sent_as_replacement_characters(server):
    """Agent output can carry a lone surrogate (a JSON escape of half an emoji): the request
    cannot be encoded as is, so it goes out with U+FFFD (same UTF-16 length, entities kept)."""
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        sent = await bot.send_message(
            CHAT, "half \ud83d emoji", entities=[{"type": "bold", "offset": 5, "length": 1}]
        )
        assert sent is not None
        stored = server.message(CHAT, sent["message_id"])
        assert stored.text == "half \ufffd emoji"
        assert stored.entities == [{"type": "bold", "offset": 5, "length": 1}]
