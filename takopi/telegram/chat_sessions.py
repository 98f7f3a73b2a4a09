"""Stored sessions for ``session_mode = "chat"``: one resume token per engine per chat key.

File ``telegram_chat_sessions_state.json`` (next to the config)::

    {"version": 1, "cwd": "/abs/startup/cwd",
     "chats": {"<chat_id>:<sender_id|chat>": {"sessions": {"<engine>": {"resume": "<token>"}}}}}

Private chats use the key ``<chat_id>:chat``; groups keep one entry per sender. When takopi
starts from another working directory than the stored ``cwd``, every session is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from takopi.logging import get_logger
from takopi.model import ResumeToken

from .entry_store import EntryStateStore, StoredSession, store_session, stored_session
from .state_store import CheckedShape

STATE_FILENAME = "telegram_chat_sessions_state.json"
STATE_VERSION = 1

log = get_logger(__name__)


def chat_session_key(chat_id: int, sender_id: int | None, *, is_private: bool) -> str:
    """``<chat_id>:chat`` in private chats, ``<chat_id>:<sender_id>`` in groups."""
    if is_private or sender_id is None:
        return f"{chat_id}:chat"
    return f"{chat_id}:{sender_id}"


class _SessionsEntry(TypedDict, total=False):
    sessions: dict[str, StoredSession]


class _SessionsFile(TypedDict, total=False):
    version: int
    cwd: str | None
    chats: dict[str, _SessionsEntry]


_SHAPE = CheckedShape(_SessionsFile)


def _new_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "cwd": None, "chats": {}}


def _empty(entry: dict[str, Any]) -> bool:
    return not entry.get("sessions")


class ChatSessionStore(EntryStateStore):
    """Resume tokens per chat key and engine."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            table="chats",
            version=STATE_VERSION,
            shape=_SHAPE,
            new_state=_new_state,
            new_entry=dict,
            is_empty=_empty,
            log_prefix="telegram.chat_sessions",
            logger=log,
        )

    async def sync_cwd(self, cwd: str) -> bool:
        """Drop every session when takopi now runs from another cwd; returns True if wiped."""
        async with self._current():
            previous = self._state.get("cwd")
            wiped = previous is not None and previous != cwd and bool(self._table())
            if wiped:
                log.info("telegram.chat_sessions.cwd_changed", previous=previous, cwd=cwd)
                self._state["chats"] = {}
            if previous != cwd or wiped:
                self._state["cwd"] = cwd
                self._save_locked()
            return wiped

    async def get(self, key: str, engine: str) -> ResumeToken | None:
        async with self._current():
            return stored_session(self._entry(key, create=False), engine)

    async def has(self, key: str) -> bool:
        async with self._current():
            entry = self._entry(key, create=False)
            return entry is not None and bool(entry.get("sessions"))

    async def set(self, key: str, token: ResumeToken) -> None:
        async with self._current():
            entry = self._entry(key, create=True)
            assert entry is not None
            if store_session(entry, token):
                self._save_locked()

    async def clear(self, key: str) -> bool:
        async with self._current():
            removed = self._table().pop(key, None) is not None
            if removed:
                self._save_locked()
            return removed


__all__ = ["STATE_FILENAME", "ChatSessionStore", "chat_session_key"]
