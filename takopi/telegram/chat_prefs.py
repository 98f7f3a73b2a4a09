"""Per-chat preferences: default engine, trigger mode, bound context, model/reasoning overrides.

File ``telegram_chat_prefs_state.json`` (next to the config)::

    {"version": 1, "chats": {"<chat_id>": {"default_engine": str|null,
      "trigger_mode": "mentions"|null, "context_project": str|null, "context_branch": str|null,
      "engine_overrides": {"<engine>": {"model": str|null, "reasoning": str|null}}}}}

Empty chat entries are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from takopi.context import RunContext
from takopi.logging import get_logger

from .entry_store import SettingsEntry, SettingsStateStore, overrides_empty
from .state_store import CheckedShape

STATE_FILENAME = "telegram_chat_prefs_state.json"
STATE_VERSION = 1

log = get_logger(__name__)


class _ChatEntry(SettingsEntry, total=False):
    context_project: str | None
    context_branch: str | None


class _PrefsFile(TypedDict, total=False):
    version: int
    chats: dict[str, _ChatEntry]


_SHAPE = CheckedShape(_PrefsFile)


def _new_entry() -> dict[str, Any]:
    return {
        "default_engine": None,
        "trigger_mode": None,
        "context_project": None,
        "context_branch": None,
        "engine_overrides": {},
    }


def _empty(entry: dict[str, Any]) -> bool:
    return overrides_empty(entry) and not any(
        entry.get(k)
        for k in ("default_engine", "trigger_mode", "context_project", "context_branch")
    )


class ChatPrefsStore(SettingsStateStore):
    """Chat-level settings changed with ``/agent``, ``/model``, ``/reasoning``, ``/trigger``,
    ``/ctx``, keyed by chat id (``get``/``set`` a field, ``get_override``/``set_override``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            table="chats",
            version=STATE_VERSION,
            shape=_SHAPE,
            new_entry=_new_entry,
            is_empty=_empty,
            log_prefix="telegram.chat_prefs",
            logger=log,
        )

    async def get_context(self, chat_id: int) -> RunContext | None:
        async with self._current():
            entry = self._entry(chat_id, create=False)
            if not entry or not entry.get("context_project"):
                return None
            return RunContext(project=entry["context_project"], branch=entry.get("context_branch"))

    async def set_context(self, chat_id: int, context: RunContext | None) -> None:
        async with self._current():
            entry = self._entry(chat_id, create=True)
            assert entry is not None
            entry["context_project"] = context.project if context else None
            entry["context_branch"] = context.branch if context else None
            self._commit(chat_id)


__all__ = ["STATE_FILENAME", "ChatPrefsStore"]
