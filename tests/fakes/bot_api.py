"""A fake Telegram Bot API server for tests: a real HTTP server on 127.0.0.1.

It keeps chats, users, messages and their edits, serves ``getUpdates`` with long-poll
semantics (offset confirms updates), enforces the 4096-character limit (UTF-16 units, after
entities), validates entities, answers 400 "message is not modified", and can inject faults:
429 with ``retry_after``, 5xx, slow responses and dropped connections. With
``enforce_limits()`` (off by default) it also answers 429 like Telegram's flood control does
when a chat, a group or the whole bot writes too fast (see :class:`RateLimits`).

Usage::

    server = BotApiServer()
    base_url = server.start()            # "http://127.0.0.1:<port>"
    server.add_chat(1001)                # private chat with user 1001
    msg = server.send_user_message(1001, "hello")
    server.wait_for(lambda: server.bot_messages(1001), timeout=10)
    server.stop()

Everything is thread-safe: the server runs on its own threads, so it can be driven from sync
tests, from async tests, and from other processes (over HTTP) alike.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

T = TypeVar("T")

DEFAULT_TOKEN = "123456789:AAFakeTestTokenForTakopiTests_abcdefghijk"
MAX_TEXT_UTF16 = 4096
_ENTITY_TYPES = {
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


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how Telegram counts)."""
    return len(text.encode("utf-16-le")) // 2


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
    created_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the server stored it (comparable across local processes)"""
    deleted_at: float | None = None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """Inline keyboard buttons (flattened), empty when there are none."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b for row in rows for b in row]


@dataclass
class Fault:
    """A fault rule: applies to the next ``count`` requests of ``method`` (None = any)."""

    kind: str  # "429" | "5xx" | "slow" | "drop" | "error"
    method: str | None = None
    count: int = 1
    retry_after: float | None = 1.0
    status: int = 502
    delay: float = 0.0
    description: str = "Bad Request"
    chat_id: int | None = None


_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendDocument",
        "sendPhoto",
        "sendVideo",
        "sendVoice",
        "sendAudio",
        "sendAnimation",
        "sendSticker",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
    }
)


@dataclass(frozen=True)
class RateLimits:
    """Telegram's flood control as this fake models it (the Bot API FAQ: about one message per
    second in a chat with short bursts tolerated, 20 messages per minute in a group, about 30
    messages per second overall; the real burst tolerance is unpublished).

    - per chat, ``chat_methods`` (messages sent and edited) pass a GCRA limiter of
      ``chat_per_s`` with a burst of ``chat_burst`` back-to-back requests;
    - per group (negative chat id), at most ``group_per_minute`` ``chat_methods`` requests in any
      60 s window;
    - overall, at most ``global_per_s`` ``global_methods`` requests (deletes too) in any second.

    ``time_scale`` > 1 speeds every limit up by that factor (tests). A request over a limit gets
    429 with ``retry_after`` in whole seconds (at least 1, like Telegram) and is not counted.
    """

    chat_per_s: float = 1.0
    chat_burst: float = 3.0
    group_per_minute: int = 20
    global_per_s: int = 30
    time_scale: float = 1.0
    chat_methods: frozenset[str] = _MESSAGE_METHODS
    global_methods: frozenset[str] = _MESSAGE_METHODS | {"deleteMessage", "deleteMessages"}


class _FloodControl:
    """Admission per :class:`RateLimits` (call with the server lock held)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        scale = limits.time_scale
        self._emission = 1.0 / (limits.chat_per_s * scale)
        self._tolerance = max(0.0, limits.chat_burst - 1.0) * self._emission
        self._group_window = 60.0 / scale
        self._global_window = 1.0 / scale
        self._tat: dict[int, float] = {}
        self._group_log: dict[int, deque[float]] = {}
        self._global_log: deque[float] = deque()

    @staticmethod
    def _window_wait(log: deque[float], limit: int, window: float, now: float) -> float:
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) < limit:
            return 0.0
        return log[len(log) - limit] + window - now

    def admit(self, method: str, chat_id: int | None, now: float) -> float | None:
        """``None`` when the request may pass (it is then counted), else seconds to wait."""
        lim = self.limits
        charged = method in lim.chat_methods and chat_id is not None
        waits = []
        if method in lim.global_methods:
            waits.append(
                self._window_wait(self._global_log, lim.global_per_s, self._global_window, now)
            )
        if charged:
            assert chat_id is not None
            tat = max(self._tat.get(chat_id, now), now)
            waits.append(tat - self._tolerance - now)
            if chat_id < 0:
                log = self._group_log.setdefault(chat_id, deque())
                waits.append(self._window_wait(log, lim.group_per_minute, self._group_window, now))
        wait = max(waits, default=0.0)
        if wait > 0:
            return wait
        if method in lim.global_methods:
            self._global_log.append(now)
        if charged:
            assert chat_id is not None
            self._tat[chat_id] = max(self._tat.get(chat_id, now), now) + self._emission
            if chat_id < 0:
                self._group_log.setdefault(chat_id, deque()).append(now)
        return None


class BotApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class BotApiServer:
    """The fake Bot API. ``start()`` returns the base URL to use as ``api_url``."""

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
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start serving on an ephemeral 127.0.0.1 port; returns the base URL."""
        server = self

        class Handler(_Handler):
            api = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="fake-bot-api", daemon=True
        )
        self._thread.start()
        host, port = httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and wake up pending long polls."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> BotApiServer:
        if not self.base_url:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ world setup
    def add_user(
        self, user_id: int, *, username: str | None = None, is_bot: bool = False
    ) -> dict[str, Any]:
        with self._cond:
            user = {
                "id": user_id,
                "is_bot": is_bot,
                "first_name": username or f"user{user_id}",
            }
            if username:
                user["username"] = username
            self._users[user_id] = user
            return dict(user)

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

    # ------------------------------------------------------------------ user actions
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

    # ------------------------------------------------------------------ inspection
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

    # ------------------------------------------------------------------ faults
    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        count: int = 1,
        retry_after: float | None = 1.0,
        status: int = 502,
        delay: float = 0.0,
        description: str = "Bad Request",
        chat_id: int | None = None,
    ) -> Fault:
        """Make the next ``count`` matching requests fail.

        ``kind``: ``"429"`` (Too Many Requests with ``retry_after``; None omits it), ``"5xx"``
        (HTTP ``status``), ``"slow"`` (answer normally after ``delay`` seconds), ``"drop"``
        (close the connection without answering), ``"error"`` (400 with ``description``)."""
        fault = Fault(
            kind=kind,
            method=method,
            count=count,
            retry_after=retry_after,
            status=status,
            delay=delay,
            description=description,
            chat_id=chat_id,
        )
        with self._cond:
            self._faults.append(fault)
        return fault

    def enforce_limits(self, limits: RateLimits | None = None) -> RateLimits:
        """Answer 429 to writes over Telegram-like flood limits (``RateLimits()`` by default)
        from now on; counters start empty."""
        limits = limits or RateLimits()
        with self._cond:
            self._flood = _FloodControl(limits)
        return limits

    def stop_enforcing_limits(self) -> None:
        with self._cond:
            self._flood = None

    def rate_limited(self) -> list[tuple[str, int, str]]:
        """The 429 answers given so far (flood control and injected ones)."""
        with self._cond:
            return [e for e in self.errors if e[1] == 429]

    def _admit(self, method: str, params: dict[str, Any]) -> float | None:
        with self._cond:
            if self._flood is None:
                return None
            return self._flood.admit(method, _as_int(params.get("chat_id")), time.monotonic())

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.count <= 0:
                    continue
                if fault.method is not None and fault.method != method:
                    continue
                if fault.chat_id is not None and _as_int(params.get("chat_id")) != fault.chat_id:
                    continue
                fault.count -= 1
                return fault
        return None

    # ------------------------------------------------------------------ internals
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

    def handle(self, method: str, params: dict[str, Any]) -> Any:
        """Dispatch one Bot API call (raises BotApiError for API-level failures)."""
        fn = getattr(self, f"_api_{method}", None)
        if fn is None:
            raise BotApiError(404, "Not Found: method not found")
        return fn(params)

    def _require_chat(self, params: dict[str, Any]) -> int:
        chat_id = _as_int(params.get("chat_id"))
        if chat_id is None or chat_id not in self._chats:
            raise BotApiError(400, "Bad Request: chat not found")
        return chat_id

    def _check_text(self, text: Any, entities: Any) -> list[dict[str, Any]]:
        if not isinstance(text, str) or not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        size = utf16_len(text)
        if size > MAX_TEXT_UTF16:
            raise BotApiError(400, "Bad Request: message is too long")
        if entities is None:
            return []
        if isinstance(entities, str):
            try:
                entities = json.loads(entities)
            except ValueError:
                raise BotApiError(400, "Bad Request: can't parse entities JSON object") from None
        if not isinstance(entities, list):
            raise BotApiError(400, "Bad Request: can't parse entities JSON object")
        for ent in entities:
            if not isinstance(ent, dict):
                raise BotApiError(400, "Bad Request: can't parse entities JSON object")
            kind = ent.get("type")
            offset = ent.get("offset")
            length = ent.get("length")
            if kind not in _ENTITY_TYPES:
                raise BotApiError(400, f"Bad Request: unsupported entity type {kind!r}")
            if not isinstance(offset, int) or not isinstance(length, int):
                raise BotApiError(400, "Bad Request: entity offset/length must be integers")
            if offset < 0 or length <= 0 or offset + length > size:
                raise BotApiError(400, "Bad Request: entity is out of bounds")
            if kind == "text_link":
                url = ent.get("url")
                if not isinstance(url, str) or not (
                    url.startswith(("http://", "https://", "tg://"))
                ):
                    raise BotApiError(400, "Bad Request: wrong HTTP URL specified")
            if kind == "pre" and "language" in ent and not isinstance(ent["language"], str):
                raise BotApiError(400, "Bad Request: pre language must be a string")
        return [dict(e) for e in entities]

    def _api_getMe(self, params: dict[str, Any]) -> Any:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False}

    def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = _as_int(params.get("offset")) or 0
        timeout = float(params.get("timeout") or 0)
        timeout = min(timeout, self.max_poll_timeout)
        limit = _as_int(params.get("limit")) or 100
        allowed = params.get("allowed_updates")
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [
                    u
                    for u in self._updates
                    if not isinstance(u.get("update_id"), int) or u["update_id"] >= offset
                ]
            while True:
                ready = [
                    u
                    for u in self._updates
                    if not isinstance(u.get("update_id"), int) or u["update_id"] >= offset
                ]
                if allowed:
                    known = {"message", "edited_message", "callback_query", "channel_post"}
                    ready = [
                        u for u in ready if not (known & set(u)) or any(k in u for k in allowed)
                    ]
                if ready or self._stopping:
                    served = ready[:limit]
                    # updates without a usable update_id cannot be confirmed: serve them once
                    self._updates = [
                        u
                        for u in self._updates
                        if isinstance(u.get("update_id"), int) or all(u is not s for s in served)
                    ]
                    return served
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            entities = self._check_text(params.get("text"), params.get("entities"))
            reply_to = _as_int(params.get("reply_to_message_id"))
            reply_params = params.get("reply_parameters")
            if reply_to is None and isinstance(reply_params, dict):
                reply_to = _as_int(reply_params.get("message_id"))
            if reply_to is not None and self._find(chat_id, reply_to) is None:
                raise BotApiError(400, "Bad Request: message to be replied not found")
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            msg = FakeMessage(
                chat_id=chat_id,
                message_id=next(self._next_message_id[chat_id]),
                text=params["text"],
                from_bot=True,
                sender_id=self.bot_id,
                date=int(time.time()),
                entities=entities,
                reply_to_message_id=reply_to,
                thread_id=_as_int(params.get("message_thread_id")),
                reply_markup=markup if isinstance(markup, dict) else None,
                disable_notification=bool(params.get("disable_notification")),
                link_preview_options=params.get("link_preview_options"),
            )
            self._messages[chat_id].append(msg)
            self._cond.notify_all()
            return self._as_raw(msg)

    def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            message_id = _as_int(params.get("message_id"))
            msg = self._find(chat_id, message_id) if message_id is not None else None
            if msg is None or msg.deleted:
                raise BotApiError(400, "Bad Request: message to edit not found")
            if not msg.from_bot:
                raise BotApiError(400, "Bad Request: message can't be edited")
            entities = self._check_text(params.get("text"), params.get("entities"))
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            new_markup = markup if isinstance(markup, dict) else None
            old_buttons = (msg.reply_markup or {}).get("inline_keyboard") or []
            new_buttons = (new_markup or {}).get("inline_keyboard") or []
            if (
                params["text"] == msg.text
                and entities == msg.entities
                and old_buttons == new_buttons
            ):
                raise BotApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            msg.edits.append(msg.text)
            msg.text = params["text"]
            msg.entities = entities
            msg.reply_markup = new_markup
            msg.link_preview_options = params.get("link_preview_options")
            self._cond.notify_all()
            return self._as_raw(msg)

    def _api_deleteMessage(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            message_id = _as_int(params.get("message_id"))
            msg = self._find(chat_id, message_id) if message_id is not None else None
            if msg is None or msg.deleted:
                raise BotApiError(400, "Bad Request: message to delete not found")
            msg.deleted = True
            msg.deleted_at = time.monotonic()
            self._cond.notify_all()
            return True

    def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if isinstance(commands, str):
            commands = json.loads(commands)
        if not isinstance(commands, list) or len(commands) > 100:
            raise BotApiError(400, "Bad Request: invalid commands")
        for c in commands:
            if not isinstance(c, dict) or not isinstance(c.get("command"), str):
                raise BotApiError(400, "Bad Request: invalid commands")
        with self._cond:
            self.commands = commands
        return True

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        with self._cond:
            self.callback_answers.append(dict(params))
            self._cond.notify_all()
        return True

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


class _Handler(BaseHTTPRequestHandler):
    api: BotApiServer
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: with Nagle on, the body waits for the client's delayed
    # ACK of the headers (~40 ms on Linux) and every call would look 40 ms slower than it is
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parsed = urlparse(self.path)
        parts = parsed.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        token, method = parts[0][3:], parts[1]
        if token != self.api.token:
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if body:
            ctype = self.headers.get("Content-Type") or ""
            try:
                if "json" in ctype:
                    loaded = json.loads(body)
                    if not isinstance(loaded, dict):
                        raise ValueError("not an object")
                    params.update(loaded)
                else:
                    params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
            except ValueError:
                self._reply(
                    400, {"ok": False, "error_code": 400, "description": "Bad Request: bad body"}
                )
                return
        with self.api._cond:
            self.api.requests.append((method, params))
        fault = self.api._take_fault(method, params)
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "429":
                payload: dict[str, Any] = {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry later",
                }
                if fault.retry_after is not None:
                    payload["parameters"] = {"retry_after": fault.retry_after}
                    payload["description"] = f"Too Many Requests: retry after {fault.retry_after}"
                self._record_error(method, 429, payload["description"])
                self._reply(429, payload)
                return
            elif fault.kind == "5xx":
                self._record_error(method, fault.status, "Internal Server Error")
                self._reply(
                    fault.status,
                    {
                        "ok": False,
                        "error_code": fault.status,
                        "description": "Internal Server Error",
                    },
                )
                return
            elif fault.kind == "error":
                self._record_error(method, 400, fault.description)
                self._reply(400, {"ok": False, "error_code": 400, "description": fault.description})
                return
        wait = self.api._admit(method, params)
        if wait is not None:
            retry_after = max(1, math.ceil(wait))
            description = f"Too Many Requests: retry after {retry_after}"
            self._record_error(method, 429, description)
            self._reply(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": description,
                    "parameters": {"retry_after": retry_after},
                },
            )
            return
        try:
            result = self.api.handle(method, params)
        except BotApiError as exc:
            self._record_error(method, exc.status, exc.description)
            payload = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                payload["parameters"] = exc.parameters
            self._reply(exc.status, payload)
            return
        except Exception as exc:  # a bug in the fake: surface it as a 500
            self._record_error(method, 500, repr(exc))
            self._reply(500, {"ok": False, "error_code": 500, "description": repr(exc)})
            return
        self._reply(200, {"ok": True, "result": result})

    def _record_error(self, method: str, status: int, description: str) -> None:
        with self.api._cond:
            self.api.errors.append((method, status, description))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


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


__all__ = ["DEFAULT_TOKEN", "BotApiServer", "FakeMessage", "Fault", "RateLimits", "utf16_len"]
