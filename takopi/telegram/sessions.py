"""Stored sessions (auto-resume without replying): which key a message's sessions live under
and where that key is stored.

- in a managed forum topic: per topic (whatever the session mode), in
  ``telegram_topics_state.json``; keys ``topic:<chat_id>:<thread_id>``;
- else with ``session_mode = "chat"``: per chat (private) or per sender (groups), in
  ``telegram_chat_sessions_state.json``.
"""

from __future__ import annotations

from takopi.model import ResumeToken

from .chat_sessions import ChatSessionStore, chat_session_key
from .scope import ChatScope
from .topic_state import TopicStateStore
from .types import TelegramIncomingMessage

TOPIC_PREFIX = "topic:"


class Sessions:
    """Session keys and their stores."""

    def __init__(
        self,
        chat_store: ChatSessionStore | None,
        *,
        session_mode: str,
        topic_store: TopicStateStore | None = None,
    ) -> None:
        self.chat_store = chat_store
        self.topic_store = topic_store
        self.session_mode = session_mode

    def key_for(self, msg: TelegramIncomingMessage, scope: ChatScope) -> str | None:
        """The session key of a message, or None when sessions are not kept for it."""
        if scope.topic_key is not None and self.topic_store is not None:
            return TOPIC_PREFIX + scope.topic_key
        if self.session_mode != "chat" or self.chat_store is None:
            return None
        return chat_session_key(msg.chat_id, msg.sender_id, is_private=msg.is_private)

    def _topic_key(self, key: str) -> str | None:
        return key[len(TOPIC_PREFIX) :] if key.startswith(TOPIC_PREFIX) else None

    async def get(self, key: str, engine: str) -> ResumeToken | None:
        topic = self._topic_key(key)
        if topic is not None:
            return await self.topic_store.get_session(topic, engine) if self.topic_store else None
        if self.chat_store is None:
            return None
        return await self.chat_store.get(key, engine)

    async def set(self, key: str, token: ResumeToken) -> None:
        topic = self._topic_key(key)
        if topic is not None:
            if self.topic_store is not None:
                await self.topic_store.set_session(topic, token)
        elif self.chat_store is not None:
            await self.chat_store.set(key, token)

    async def clear(self, key: str) -> None:
        topic = self._topic_key(key)
        if topic is not None:
            if self.topic_store is not None:
                await self.topic_store.clear_sessions(topic)
        elif self.chat_store is not None:
            await self.chat_store.clear(key)

    async def sync_cwd(self, cwd: str) -> None:
        """Chat sessions are dropped when takopi starts from another working directory."""
        if self.chat_store is not None and self.session_mode == "chat":
            await self.chat_store.sync_cwd(cwd)


__all__ = ["Sessions"]
