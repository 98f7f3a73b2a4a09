"""The bot's side of messaging: ``getUpdates`` (long polls, offsets), ``sendMessage``,
``editMessageText``, ``deleteMessage`` with Telegram's checks (4096 UTF-16 units, entities,
"message is not modified", forum threads), ``setMyCommands`` and ``answerCallbackQuery``."""

from __future__ import annotations

import json
import time
from typing import Any

from .records import ENTITY_TYPES, MAX_TEXT_UTF16, BotApiError, FakeMessage, _as_int, utf16_len
from .state import BotApiState


class MessagesMixin(BotApiState):
    """Bot API message methods (see module docstring)."""

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
            if kind not in ENTITY_TYPES:
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
            thread = _as_int(params.get("message_thread_id"))
            if (
                thread is not None
                and self._chats[chat_id].get("is_forum")
                and thread not in self._topics.get(chat_id, {})
            ):
                raise BotApiError(400, "Bad Request: message thread not found")
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


__all__ = ["MessagesMixin"]
