"""Bot API helpers for onboarding (the wizard itself belongs to the CLI).

- :func:`check_bot_token` — validate a token with ``getMe`` (429 retried up to 3 times);
- :func:`capture_chat_id` — drain pending updates, then wait for the next message from a
  human and return its chat;
- :func:`mask_token` — ``first9...last5`` for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from takopi.logging import get_logger

from .client_api import DEFAULT_API_URL, BotApi, TelegramError, TelegramRetryAfter

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """What ``getMe`` says about the bot."""

    id: int
    username: str | None
    first_name: str | None = None


@dataclass(frozen=True, slots=True)
class CapturedChat:
    """The chat a user wrote to the bot from."""

    chat_id: int
    chat_type: str | None
    title: str | None
    sender_id: int | None
    is_forum: bool = False


def mask_token(token: str) -> str:
    """``123456789...abcde`` (tokens of 12 chars or fewer are fully masked)."""
    if len(token) <= 12:
        return "*" * len(token)
    return f"{token[:9]}...{token[-5:]}"


async def check_bot_token(
    token: str, *, api_url: str = DEFAULT_API_URL, attempts: int = 3
) -> BotIdentity | None:
    """``getMe`` with the token; None when Telegram rejects it or is unreachable."""
    api = BotApi(token, api_url=api_url, timeout_s=30.0)
    try:
        for _ in range(max(1, attempts)):
            try:
                me = await api.get_me()
            except TelegramRetryAfter as exc:
                await anyio.sleep(exc.retry_after)
                continue
            except TelegramError as exc:
                log.warning("onboarding.token_check_failed", error=exc.description)
                return None
            if not isinstance(me, dict) or not isinstance(me.get("id"), int):
                return None
            return BotIdentity(
                id=me["id"], username=me.get("username"), first_name=me.get("first_name")
            )
        return None
    finally:
        await api.close()


def _chat_of(update: Any) -> CapturedChat | None:
    if not isinstance(update, dict):
        return None
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    sender = message.get("from")
    if isinstance(sender, dict) and sender.get("is_bot"):
        return None
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    return CapturedChat(
        chat_id=chat["id"],
        chat_type=chat.get("type"),
        title=chat.get("title") or chat.get("username") or chat.get("first_name"),
        sender_id=sender.get("id") if isinstance(sender, dict) else None,
        is_forum=bool(chat.get("is_forum")),
    )


async def capture_chat_id(
    token: str,
    *,
    api_url: str = DEFAULT_API_URL,
    poll_timeout_s: int = 50,
    timeout_s: float | None = None,
) -> CapturedChat | None:
    """Drain pending updates, then return the chat of the next human message (None on
    timeout). Cannot run while another process polls the same bot."""
    api = BotApi(token, api_url=api_url)
    offset: int | None = None

    async def poll(timeout: int) -> list[dict[str, Any]]:
        while True:
            try:
                return await api.get_updates(
                    offset=offset, timeout_s=timeout, allowed_updates=["message"]
                )
            except TelegramRetryAfter as exc:
                await anyio.sleep(exc.retry_after)
            except TelegramError as exc:
                log.warning("onboarding.get_updates_failed", error=exc.description)
                await anyio.sleep(2.0)

    try:
        while True:
            backlog = await poll(0)
            if not backlog:
                break
            offset = max(u.get("update_id", 0) for u in backlog) + 1
        with anyio.move_on_after(timeout_s):
            while True:
                updates = await poll(poll_timeout_s)
                found: CapturedChat | None = None
                for update in updates:
                    if isinstance(update.get("update_id"), int):
                        offset = max(offset or 0, update["update_id"] + 1)
                    chat = _chat_of(update)
                    if chat is not None:
                        found = chat
                if found is not None:
                    return found
        return None
    finally:
        await api.close()


__all__ = ["BotIdentity", "CapturedChat", "capture_chat_id", "check_bot_token", "mask_token"]
