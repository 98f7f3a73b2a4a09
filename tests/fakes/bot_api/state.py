"""The fake Bot API's state (chats, users, members, topics, messages, updates, files, faults,
recorded requests) behind one lock, and the helpers every part of it uses."""

from __future__ import annotations

import itertools
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from .faults import Fault
from .limits import RateLimits, _FloodControl
from .records import DEFAULT_TOKEN, BotApiError, FakeFile, FakeMessage, _as_int


class BotApiState:
    """Shared state of :class:`~tests.fakes.bot_api.BotApiServer`; every part locks
    ``_cond`` (a condition: long polls and ``wait_for`` callers wait on it)."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_id: int = 424242,
        bot_username: str = "takopi_test_bot",
        max_poll_timeout: float = 2.0,
        limits: RateLimits | None = None,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.max_poll_timeout = max_poll_timeout
        self._cond = threading.Condition()
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._members: dict[tuple[int, int], dict[str, Any]] = {}
        self._topics: dict[int, dict[int, str]] = {}  # forum chat -> thread id -> name
        self._messages: dict[int, list[FakeMessage]] = {}
        self._next_message_id: dict[int, itertools.count[int]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[tuple[str, int, str]] = []
        self._faults: list[Fault] = []
        self._flood: _FloodControl | None = _FloodControl(limits) if limits else None
        self._files: dict[str, FakeFile] = {}
        self._file_ids = itertools.count(1)
        self.downloads: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.base_url = ""

    def _find(self, chat_id: int, message_id: int) -> FakeMessage | None:
        for m in self._messages.get(chat_id, []):
            if m.message_id == message_id:
                return m
        return None

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "takopi",
            "username": self.bot_username,
        }

    def _as_raw(self, m: FakeMessage, *, include_reply: bool = True) -> dict[str, Any]:
        if not m.from_bot:
            raw = dict(m.raw)
            if not include_reply:
                raw.pop("reply_to_message", None)
            return raw
        raw = {
            "message_id": m.message_id,
            "from": self._bot_user(),
            "chat": dict(self._chats[m.chat_id]),
            "date": m.date,
            "text": m.text,
        }
        if m.entities:
            raw["entities"] = m.entities
        if m.thread_id is not None:
            raw["message_thread_id"] = m.thread_id
        if m.reply_markup and m.reply_markup.get("inline_keyboard"):
            raw["reply_markup"] = m.reply_markup
        if include_reply and m.reply_to_message_id is not None:
            target = self._find(m.chat_id, m.reply_to_message_id)
            if target is not None:
                raw["reply_to_message"] = self._as_raw(target, include_reply=False)
        if m.edits:
            raw["edit_date"] = int(time.time())
        return raw

    def _require_chat(self, params: dict[str, Any]) -> int:
        chat_id = _as_int(params.get("chat_id"))
        if chat_id is None or chat_id not in self._chats:
            raise BotApiError(400, "Bad Request: chat not found")
        return chat_id

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an arbitrary (possibly malformed) update; ``update_id`` is added if missing."""
        with self._cond:
            return self._push_update_locked(update)

    def _push_update_locked(self, update: dict[str, Any]) -> int:
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        self._cond.notify_all()
        return int(update["update_id"]) if isinstance(update["update_id"], int) else -1


__all__ = ["BotApiState"]
