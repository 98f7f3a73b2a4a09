"""What the fake Bot API stores: messages, files and the documents the bot sent, the API
error it raises, Telegram's size limits, and small helpers every part uses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOKEN = "123456789:AAFakeTestTokenForTakopiTests_abcdefghijk"
MAX_TEXT_UTF16 = 4096
MAX_GET_FILE_BYTES = 20 * 1024 * 1024
"""Bots can only download files up to 20 MB (``getFile``)."""
MAX_SEND_DOCUMENT_BYTES = 50 * 1024 * 1024
"""Bots can send files up to 50 MB."""
ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
    }
)
"""The ``MessageEntity`` types the Bot API knows."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how Telegram counts)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class FakeDocument:
    """A document the bot sent (``sendDocument``)."""

    filename: str
    content: bytes
    caption: str | None = None


@dataclass
class FakeFile:
    """A file users posted: what ``getFile`` reports and the download serves."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    declared_size: int | None
    hide_size: bool = False
    """Leave ``file_size`` out of ``getFile`` too (Telegram's fields are optional)."""

    @property
    def size(self) -> int:
        """The size Telegram reports (a test may declare more than it stores)."""
        return self.declared_size if self.declared_size is not None else len(self.content)


@dataclass
class FakeMessage:
    """One message as the fake server stores it."""

    chat_id: int
    message_id: int
    text: str
    from_bot: bool
    sender_id: int
    date: int
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to_message_id: int | None = None
    thread_id: int | None = None
    reply_markup: dict[str, Any] | None = None
    disable_notification: bool = False
    link_preview_options: dict[str, Any] | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    document: FakeDocument | None = None
    created_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the server stored it (comparable across local processes)"""
    deleted_at: float | None = None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Inline keyboard buttons (flattened), empty when there are none."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b for row in rows for b in row]


class BotApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


__all__ = [
    "DEFAULT_TOKEN",
    "ENTITY_TYPES",
    "MAX_GET_FILE_BYTES",
    "MAX_SEND_DOCUMENT_BYTES",
    "MAX_TEXT_UTF16",
    "BotApiError",
    "FakeDocument",
    "FakeFile",
    "FakeMessage",
    "utf16_len",
]
