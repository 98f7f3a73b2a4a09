"""Telegram checks the CLI runs itself (``takopi doctor``, the onboarding wizard).

They use the telegram plugin's Bot API client (:mod:`takopi.telegram.client_api`); the API
base URL comes from ``transports.telegram.api_url`` (or the ``TAKOPI__TRANSPORTS__TELEGRAM__API_URL``
environment override), so tests point them at the fake Bot API server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from takopi.telegram.client_api import DEFAULT_API_URL, BotApi, TelegramError

API_URL_ENV = "TAKOPI__TRANSPORTS__TELEGRAM__API_URL"


def api_url_from(raw_config: dict[str, Any] | None) -> str:
    """The Bot API base URL: env override, then ``[transports.telegram] api_url``, then default."""
    env = os.environ.get(API_URL_ENV, "").strip()
    if env:
        return env
    transports = (raw_config or {}).get("transports")
    telegram = transports.get("telegram") if isinstance(transports, dict) else None
    value = telegram.get("api_url") if isinstance(telegram, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return DEFAULT_API_URL


@dataclass(frozen=True, slots=True)
class TopicsCheck:
    """Outcome of validating one chat for forum topics."""

    ok: bool
    detail: str


async def check_topics_chat(api: BotApi, chat_id: int, bot_id: int) -> TopicsCheck:
    """A forum supergroup where the bot is admin with "manage topics" (or the creator)."""
    try:
        chat = await api.get_chat(chat_id)
    except TelegramError as exc:
        return TopicsCheck(False, f"chat {chat_id} unreachable: {exc.description}")
    if not chat or chat.get("type") != "supergroup":
        kind = (chat or {}).get("type", "unknown")
        return TopicsCheck(False, f"chat {chat_id} is a {kind}, topics need a supergroup")
    if not chat.get("is_forum"):
        return TopicsCheck(False, f"topics are not enabled in chat {chat_id}")
    try:
        member = await api.get_chat_member(chat_id, bot_id)
    except TelegramError as exc:
        return TopicsCheck(False, f"cannot read the bot's rights in {chat_id}: {exc.description}")
    status = (member or {}).get("status")
    if status == "creator":
        return TopicsCheck(True, f"chat {chat_id}")
    if status == "administrator" and (member or {}).get("can_manage_topics"):
        return TopicsCheck(True, f"chat {chat_id}")
    return TopicsCheck(
        False, f"the bot must be an admin with 'manage topics' in chat {chat_id} (is {status})"
    )


def describe_chat_kind(chat_type: str | None, *, is_forum: bool = False) -> str:
    """``private chat``, ``group``, ``supergroup``, ``forum supergroup``, ``channel``."""
    if chat_type == "private":
        return "private chat"
    if chat_type == "supergroup" and is_forum:
        return "forum supergroup"
    return chat_type or "chat"


__all__ = [
    "API_URL_ENV",
    "TopicsCheck",
    "api_url_from",
    "check_topics_chat",
    "describe_chat_kind",
]
