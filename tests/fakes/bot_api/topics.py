"""Forum topics: users create and delete them; the bot's ``createForumTopic`` and
``editForumTopic`` need a forum supergroup where it may manage topics."""

from __future__ import annotations

from typing import Any

from .records import BotApiError, _as_int
from .state import BotApiState


class TopicsMixin(BotApiState):
    """Forum topics (see module docstring)."""

    def create_topic(self, chat_id: int, name: str) -> int:
        """A user creates a forum topic; returns its ``message_thread_id``."""
        with self._cond:
            return self._create_topic_locked(chat_id, name)

    def _create_topic_locked(self, chat_id: int, name: str) -> int:
        thread_id = next(self._next_message_id[chat_id])
        self._topics.setdefault(chat_id, {})[thread_id] = name
        return thread_id

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """A user deletes a forum topic (later edits of it fail)."""
        with self._cond:
            self._topics.get(chat_id, {}).pop(thread_id, None)

    def topics(self, chat_id: int) -> dict[int, str]:
        """The forum topics of a chat: thread id -> name."""
        with self._cond:
            return dict(self._topics.get(chat_id, {}))

    def _require_topic_rights(self, chat_id: int) -> None:
        chat = self._chats[chat_id]
        if chat.get("type") != "supergroup" or not chat.get("is_forum"):
            raise BotApiError(400, "Bad Request: the chat is not a forum")
        member = self._members.get((chat_id, self.bot_id)) or {}
        if member.get("status") != "creator" and not (
            member.get("status") == "administrator" and member.get("can_manage_topics")
        ):
            raise BotApiError(400, "Bad Request: not enough rights to manage topics")

    def _api_createForumTopic(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            self._require_topic_rights(chat_id)
            name = params.get("name")
            if not isinstance(name, str) or not 1 <= len(name) <= 128:
                raise BotApiError(400, "Bad Request: invalid topic name")
            thread_id = self._create_topic_locked(chat_id, name)
            return {"message_thread_id": thread_id, "name": name, "icon_color": 7322096}

    def _api_editForumTopic(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            self._require_topic_rights(chat_id)
            thread_id = _as_int(params.get("message_thread_id"))
            topics = self._topics.get(chat_id, {})
            if thread_id is None or thread_id not in topics:
                raise BotApiError(400, "Bad Request: TOPIC_ID_INVALID")
            name = params.get("name")
            if isinstance(name, str) and name:
                if name == topics[thread_id]:
                    raise BotApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
                topics[thread_id] = name
            return True


__all__ = ["TopicsMixin"]
