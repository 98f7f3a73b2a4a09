"""Raw Bot API updates → :mod:`takopi.telegram.types`, plus update/message de-duplication.

Malformed updates never raise: :func:`parse_update` returns ``None`` and logs
``telegram.update.malformed`` with the reason. Lone UTF-16 surrogates (``"\\ud800"`` JSON
escapes) become U+FFFD here, so no string that cannot be encoded goes further (to an engine's
stdin, a file name, a state file, the Bot API).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from takopi.logging import get_logger

from .types import TelegramCallbackQuery, TelegramIncomingMessage, TelegramIncomingUpdate
from .unicode import scrub_surrogates

SEEN_UPDATES_LIMIT = 4096
SEEN_MESSAGES_LIMIT = 2048

FORWARD_FIELDS = (
    "forward_origin",
    "forward_from",
    "forward_from_chat",
    "forward_from_message_id",
    "forward_sender_name",
    "forward_signature",
    "forward_date",
    "is_automatic_forward",
)

log = get_logger(__name__)


class MalformedUpdate(ValueError):
    """An update that does not have the shape the Bot API documents."""


def _int(value: Any, what: str, *, required: bool = True) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        if value is None and not required:
            return None
        raise MalformedUpdate(f"{what} is not an integer")
    return value


def _dict(value: Any, what: str, *, required: bool = True) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        if value is None and not required:
            return None
        raise MalformedUpdate(f"{what} is not an object")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_forwarded(raw: dict[str, Any]) -> bool:
    """Whether the message carries any of the forward fields."""
    return any(raw.get(name) for name in FORWARD_FIELDS)


def parse_message(raw: Any, *, update_id: int | None = None) -> TelegramIncomingMessage | None:
    """A ``message`` object → :class:`TelegramIncomingMessage` (``None`` if not relevant)."""
    msg = _dict(raw, "message")
    assert msg is not None
    message_id = _int(msg.get("message_id"), "message.message_id")
    chat = _dict(msg.get("chat"), "message.chat")
    assert chat is not None and message_id is not None
    chat_id = _int(chat.get("id"), "message.chat.id")
    assert chat_id is not None
    sender = _dict(msg.get("from"), "message.from", required=False)
    sender_id = _int(sender.get("id"), "message.from.id", required=False) if sender else None
    text = _str(msg.get("text"))
    if text is None:
        text = _str(msg.get("caption"))
    has_voice = isinstance(msg.get("voice"), dict)
    has_document = any(isinstance(msg.get(k), dict | list) for k in ("document", "video", "photo"))
    if text is None and not has_voice and not has_document:
        return None
    thread_id = _int(msg.get("message_thread_id"), "message.message_thread_id", required=False)
    reply = _dict(msg.get("reply_to_message"), "message.reply_to_message", required=False)
    reply_id: int | None = None
    reply_text: str | None = None
    reply_is_bot: bool | None = None
    reply_username: str | None = None
    if reply is not None:
        reply_id = _int(reply.get("message_id"), "reply_to_message.message_id")
        reply_text = _str(reply.get("text")) or _str(reply.get("caption"))
        reply_from = reply.get("from")
        if isinstance(reply_from, dict):
            reply_is_bot = bool(reply_from.get("is_bot"))
            reply_username = _str(reply_from.get("username"))
        if thread_id is not None and reply_id == thread_id:
            # implicit reply to the topic's root message: not a real reply
            reply_id = reply_text = reply_username = None
            reply_is_bot = None
    media_group_id = msg.get("media_group_id")
    date = msg.get("date")
    return TelegramIncomingMessage(
        chat_id=chat_id,
        message_id=message_id,
        text=text or "",
        update_id=update_id,
        sender_id=sender_id,
        sender_is_bot=bool(sender.get("is_bot")) if sender else False,
        date=date if isinstance(date, int) and not isinstance(date, bool) else None,
        chat_type=_str(chat.get("type")),
        is_forum=bool(chat.get("is_forum")),
        thread_id=thread_id,
        is_topic_message=bool(msg.get("is_topic_message")),
        reply_to_message_id=reply_id,
        reply_to_text=reply_text,
        reply_to_is_bot=reply_is_bot,
        reply_to_username=reply_username,
        media_group_id=str(media_group_id) if media_group_id is not None else None,
        is_forward=is_forwarded(msg),
        has_voice=has_voice,
        has_document=has_document,
        raw=msg,
    )


def parse_callback_query(raw: Any, *, update_id: int | None = None) -> TelegramCallbackQuery:
    query = _dict(raw, "callback_query")
    assert query is not None
    query_id = query.get("id")
    if not isinstance(query_id, str) or not query_id:
        raise MalformedUpdate("callback_query.id is not a string")
    sender = _dict(query.get("from"), "callback_query.from", required=False)
    message = _dict(query.get("message"), "callback_query.message", required=False)
    chat_id = message_id = thread_id = None
    if message is not None:
        message_id = _int(message.get("message_id"), "callback_query.message.message_id")
        chat = _dict(message.get("chat"), "callback_query.message.chat")
        assert chat is not None
        chat_id = _int(chat.get("id"), "callback_query.message.chat.id")
        thread_id = _int(
            message.get("message_thread_id"),
            "callback_query.message.message_thread_id",
            required=False,
        )
    return TelegramCallbackQuery(
        callback_query_id=query_id,
        chat_id=chat_id,
        message_id=message_id,
        data=_str(query.get("data")),
        update_id=update_id,
        sender_id=_int(sender.get("id"), "callback_query.from.id", required=False)
        if sender
        else None,
        thread_id=thread_id,
        raw=query,
    )


def parse_update(update: Any) -> TelegramIncomingUpdate | None:
    """Parse one raw update; ``None`` (with a log line) for malformed or irrelevant ones."""
    try:
        if not isinstance(update, dict):
            raise MalformedUpdate("update is not an object")
        update = scrub_surrogates(update)
        update_id = _int(update.get("update_id"), "update_id", required=False)
        if "message" in update:
            return parse_message(update["message"], update_id=update_id)
        if "callback_query" in update:
            return parse_callback_query(update["callback_query"], update_id=update_id)
        return None
    except MalformedUpdate as exc:
        log.warning("telegram.update.malformed", reason=str(exc), update_id=_peek_id(update))
        return None


def _peek_id(update: Any) -> Any:
    return update.get("update_id") if isinstance(update, dict) else None


class _BoundedSet:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, item: Hashable) -> bool:
        """Add ``item``; False when it was already there."""
        if item in self._items:
            return False
        self._items[item] = None
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._items)


class UpdateDeduper:
    """Seen ``update_id``\\ s (FIFO, 4096) and seen ``(chat_id, message_id)`` pairs
    (FIFO, 2048)."""

    def __init__(
        self, *, updates_limit: int = SEEN_UPDATES_LIMIT, messages_limit: int = SEEN_MESSAGES_LIMIT
    ) -> None:
        self._updates = _BoundedSet(updates_limit)
        self._messages = _BoundedSet(messages_limit)

    def is_new(self, update: TelegramIncomingUpdate) -> bool:
        if update.update_id is not None and not self._updates.add(update.update_id):
            return False
        # a ``message`` is delivered once: the same message under another update id is a
        # re-delivery too (this goes further than the reference, which keys on update_id)
        if isinstance(update, TelegramIncomingMessage):
            return self._messages.add((update.chat_id, update.message_id))
        return update.update_id is not None or self._messages.add(("cb", update.callback_query_id))


__all__ = [
    "FORWARD_FIELDS",
    "MalformedUpdate",
    "UpdateDeduper",
    "is_forwarded",
    "parse_callback_query",
    "parse_message",
    "parse_update",
]
