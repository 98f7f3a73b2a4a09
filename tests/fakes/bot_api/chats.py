"""Chats, users and what they do: world setup (users, chats, members), user actions (posting
messages, pressing buttons), inspection for tests, and ``getMe``, ``getChat`` and
``getChatMember``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .records import BotApiError, FakeMessage, _as_int
from .state import BotApiState

T = TypeVar("T")


class ChatsMixin(BotApiState):
    """Chats, users, user actions and inspection (see module docstring)."""

    # -- world setup -----------------------------------------------------------------
    def add_chat(
        self,
        chat_id: int,
        *,
        type: str | None = None,
        title: str | None = None,
        is_forum: bool = False,
    ) -> dict[str, Any]:
        """Register a chat. Positive ids default to private chats, negative to supergroups."""
        with self._cond:
            kind = type or ("private" if chat_id > 0 else "supergroup")
            chat: dict[str, Any] = {"id": chat_id, "type": kind}
            if kind == "private":
                chat["first_name"] = f"user{chat_id}"
                if chat_id not in self._users:
                    self._users[chat_id] = {
                        "id": chat_id,
                        "is_bot": False,
                        "first_name": f"user{chat_id}",
                    }
            else:
                chat["title"] = title or f"group{chat_id}"
                if is_forum:
                    chat["is_forum"] = True
            self._chats[chat_id] = chat
            self._messages.setdefault(chat_id, [])
            self._next_message_id.setdefault(chat_id, itertools.count(1))
            return dict(chat)

    def set_member(
        self, chat_id: int, user_id: int, status: str = "administrator", **extra: Any
    ) -> None:
        with self._cond:
            self._members[(chat_id, user_id)] = {"status": status, **extra}

    # -- user actions ----------------------------------------------------------------
    def send_user_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        user_id: int | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
        caption: str | None = None,
        forward_from: int | None = None,
        date: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user posts a message in ``chat_id``; it becomes a ``message`` update.

        Returns the raw Telegram message dict (``message_id`` etc.)."""
        with self._cond:
            if chat_id not in self._chats:
                self.add_chat(chat_id)
            chat = self._chats[chat_id]
            sender_id = user_id if user_id is not None else chat_id
            user = self._users.get(sender_id) or {
                "id": sender_id,
                "is_bot": False,
                "first_name": f"user{sender_id}",
            }
            self._users[sender_id] = user
            message_id = next(self._next_message_id[chat_id])
            msg_date = date if date is not None else int(time.time())
            raw: dict[str, Any] = {
                "message_id": message_id,
                "from": dict(user),
                "chat": dict(chat),
                "date": msg_date,
            }
            if text is not None:
                raw["text"] = text
            if caption is not None:
                raw["caption"] = caption
            media_keys = ("document", "photo", "video", "voice", "audio", "sticker")
            if caption is not None and not any(k in (extra or {}) for k in media_keys):
                raw.setdefault(
                    "document",
                    {
                        "file_id": f"doc{message_id}",
                        "file_unique_id": f"u{message_id}",
                        "file_name": "f.txt",
                    },
                )
            if thread_id is not None:
                raw["message_thread_id"] = thread_id
                raw["is_topic_message"] = True
                if chat.get("is_forum"):
                    self._topics.setdefault(chat_id, {}).setdefault(thread_id, f"topic {thread_id}")
            if reply_to is not None:
                target = self._find(chat_id, reply_to)
                if target is not None:
                    raw["reply_to_message"] = self._as_raw(target, include_reply=False)
                else:
                    raw["reply_to_message"] = {
                        "message_id": reply_to,
                        "chat": dict(chat),
                        "date": msg_date,
                    }
            if forward_from is not None:
                origin_user = self._users.get(forward_from) or {
                    "id": forward_from,
                    "is_bot": False,
                    "first_name": f"user{forward_from}",
                }
                raw["forward_origin"] = {
                    "type": "user",
                    "sender_user": origin_user,
                    "date": msg_date,
                }
                raw["forward_from"] = origin_user
                raw["forward_date"] = msg_date
            if extra:
                raw.update(extra)
            stored = FakeMessage(
                chat_id=chat_id,
                message_id=message_id,
                text=text if text is not None else (caption or ""),
                from_bot=False,
                sender_id=sender_id,
                date=msg_date,
                reply_to_message_id=reply_to,
                thread_id=thread_id,
                raw=raw,
            )
            self._messages[chat_id].append(stored)
            self._push_update_locked({"message": raw})
            return dict(raw)

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user_id: int | None = None,
    ) -> str:
        """A user taps an inline button of a bot message; returns the callback query id."""
        with self._cond:
            target = self._find(chat_id, message_id)
            sender_id = user_id if user_id is not None else chat_id
            user = self._users.get(sender_id) or {
                "id": sender_id,
                "is_bot": False,
                "first_name": f"user{sender_id}",
            }
            query_id = f"cq{next(self._callback_ids)}"
            query: dict[str, Any] = {
                "id": query_id,
                "from": dict(user),
                "chat_instance": f"ci{chat_id}",
                "data": data,
            }
            if target is not None:
                query["message"] = self._as_raw(target, include_reply=False)
            else:
                query["message"] = {
                    "message_id": message_id,
                    "chat": dict(self._chats.get(chat_id, {"id": chat_id, "type": "private"})),
                    "date": int(time.time()),
                }
            self._push_update_locked({"callback_query": query})
            return query_id

    # -- inspection ------------------------------------------------------------------
    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        """All messages of a chat (users' and the bot's), oldest first."""
        with self._cond:
            return [m for m in self._messages.get(chat_id, []) if include_deleted or not m.deleted]

    def bot_messages(self, chat_id: int, *, include_deleted: bool = False) -> list[FakeMessage]:
        """The bot's messages in a chat, oldest first (deleted ones hidden by default)."""
        return [m for m in self.messages(chat_id, include_deleted=include_deleted) if m.from_bot]

    def message(self, chat_id: int, message_id: int) -> FakeMessage | None:
        with self._cond:
            return self._find(chat_id, message_id)

    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Parameters of every request made to ``method`` (successful or not)."""
        with self._cond:
            return [params for name, params in self.requests if name == method]

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02
    ) -> T:
        """Poll ``predicate`` until it returns something truthy; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(interval)

    # -- Bot API ---------------------------------------------------------------------
    def _api_getMe(self, params: dict[str, Any]) -> Any:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False}

    def _api_getChat(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            return dict(self._chats[chat_id])

    def _api_getChatMember(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            user_id = _as_int(params.get("user_id"))
            if user_id is None:
                raise BotApiError(400, "Bad Request: user not found")
            member = self._members.get((chat_id, user_id))
            if member is None:
                kind = self._chats[chat_id]["type"]
                member = {"status": "member", "chat_type": kind}
            user = (
                self._bot_user()
                if user_id == self.bot_id
                else self._users.get(
                    user_id, {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
                )
            )
            return {"user": user, **member}


__all__ = ["ChatsMixin"]
