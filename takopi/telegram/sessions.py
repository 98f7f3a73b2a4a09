"""Stored sessions (auto-resume without replying): which key a message's sessions live under
and where that key is stored.

- ``session_mode = "chat"``: per chat (private) or per sender (groups), in
  ``telegram_chat_sessions_state.json``.
"""

from __future__ import annotations

from takopi.model import ResumeToken

from .chat_sessions import ChatSessionStore, chat_session_key
from .scope import ChatScope
from .types import TelegramIncomingMessage


class Sessions:
    """Session keys and their stores."""

    def __init__(self, chat_store: ChatSessionStore | None, *, session_mode: str) -> None:
        self.chat_store = chat_store
        self.session_mode = session_mode

    def key_for(self, msg: TelegramIncomingMessage, scope: ChatScope) -> str | None:
        """The session key of a message, or None when sessions are not kept for it."""
        if self.session_mode != "chat" or self.chat_store is None:
            return None
        return chat_session_key(msg.chat_id, msg.sender_id, is_private=msg.is_private)

    async def get(self, key: str, engine: str) -> ResumeToken | None:
        if self.chat_store is None:
            return None
        return await self.chat_store.get(key, engine)

    async def set(self, key: str, token: ResumeToken) -> None:
        if self.chat_store is not None:
            await self.chat_store.set(key, token)

    async def clear(self, key: str) -> None:
        if self.chat_store is not None:
            await self.chat_store.clear(key)

    async def sync_cwd(self, cwd: str) -> None:
        """Chat sessions are dropped when takopi starts from another working directory."""
        if self.chat_store is not None and self.session_mode == "chat":
            await self.chat_store.sync_cwd(cwd)


__all__ = ["Sessions"]
