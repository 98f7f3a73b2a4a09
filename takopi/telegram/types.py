"""Normalised incoming Telegram updates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class TelegramIncomingMessage:
    """A user message, reduced to what the transport needs."""

    chat_id: int
    message_id: int
    text: str
    transport: str = "telegram"
    update_id: int | None = None
    sender_id: int | None = None
    sender_is_bot: bool = False
    date: int | None = None
    chat_type: str | None = None
    is_forum: bool = False
    thread_id: int | None = None
    is_topic_message: bool = False
    reply_to_message_id: int | None = None
    reply_to_text: str | None = None
    reply_to_is_bot: bool | None = None
    reply_to_username: str | None = None
    media_group_id: str | None = None
    is_forward: bool = False
    has_voice: bool = False
    has_document: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_private(self) -> bool:
        return self.chat_type == "private" or (self.chat_type is None and self.chat_id > 0)


@dataclass(frozen=True, slots=True)
class TelegramCallbackQuery:
    """A press of an inline keyboard button."""

    callback_query_id: str
    chat_id: int | None
    message_id: int | None
    data: str | None
    transport: str = "telegram"
    update_id: int | None = None
    sender_id: int | None = None
    thread_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


TelegramIncomingUpdate: TypeAlias = TelegramIncomingMessage | TelegramCallbackQuery


def int_or_none(value: Any) -> int | None:
    """``value`` as an int (a transport-neutral chat, message or thread id may arrive as text),
    or None when it is missing or not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


Reply: TypeAlias = Callable[[TelegramIncomingMessage, str], Awaitable[object]]
"""Answers a message with Markdown text, in its forum thread (:meth:`.Replier.reply`)."""

__all__ = [
    "Reply",
    "TelegramCallbackQuery",
    "TelegramIncomingMessage",
    "TelegramIncomingUpdate",
    "int_or_none",
]
