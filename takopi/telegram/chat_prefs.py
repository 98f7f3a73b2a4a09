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

from .state_store import CheckedShape, JsonStateStore

STATE_FILENAME = "telegram_chat_prefs_state.json"
STATE_VERSION = 1

log = get_logger(__name__)


class EngineOverride(TypedDict, total=False):
    model: str | None
    reasoning: str | None


class _ChatEntry(TypedDict, total=False):
    default_engine: str | None
    trigger_mode: str | None
    context_project: str | None
    context_branch: str | None
    engine_overrides: dict[str, EngineOverride]


class _PrefsFile(TypedDict, total=False):
    version: int
    chats: dict[str, _ChatEntry]


_SHAPE = CheckedShape(_PrefsFile)


def _new_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "chats": {}}


def _empty(entry: dict[str, Any]) -> bool:
    overrides = entry.get("engine_overrides") or {}
    return not any(
        entry.get(k)
        for k in ("default_engine", "trigger_mode", "context_project", "context_branch")
    ) and not any(
        v.get("model") or v.get("reasoning") for v in overrides.values() if isinstance(v, dict)
    )


class ChatPrefsStore(JsonStateStore[dict[str, Any]]):
    """Chat-level settings changed with ``/agent``, ``/model``, ``/reasoning``, ``/trigger``,
    ``/ctx``."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            version=STATE_VERSION,
            state_type=_SHAPE,
            state_factory=_new_state,
            log_prefix="telegram.chat_prefs",
            logger=log,
        )

    def _entry(self, chat_id: int, *, create: bool) -> dict[str, Any] | None:
        chats = self._state.get("chats")
        if not isinstance(chats, dict):
            chats = {}
            self._state["chats"] = chats
        entry = chats.get(str(chat_id))
        if not isinstance(entry, dict):
            if not create:
                return None
            entry = {
                "default_engine": None,
                "trigger_mode": None,
                "context_project": None,
                "context_branch": None,
                "engine_overrides": {},
            }
            chats[str(chat_id)] = entry
        return entry

    def _commit(self, chat_id: int) -> None:
        entry = self._entry(chat_id, create=False)
        if entry is not None and _empty(entry):
            self._state["chats"].pop(str(chat_id), None)
        self._save_locked()

    async def get(self, chat_id: int, key: str) -> Any:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=False)
            return entry.get(key) if entry else None

    async def set(self, chat_id: int, key: str, value: Any) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=True)
            assert entry is not None
            entry[key] = value
            self._commit(chat_id)

    async def get_context(self, chat_id: int) -> RunContext | None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=False)
            if not entry or not entry.get("context_project"):
                return None
            return RunContext(project=entry["context_project"], branch=entry.get("context_branch"))

    async def set_context(self, chat_id: int, context: RunContext | None) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=True)
            assert entry is not None
            entry["context_project"] = context.project if context else None
            entry["context_branch"] = context.branch if context else None
            self._commit(chat_id)

    async def get_override(self, chat_id: int, engine: str, field: str) -> str | None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=False)
            overrides = (entry or {}).get("engine_overrides") or {}
            value = (overrides.get(engine) or {}).get(field)
            return value if isinstance(value, str) and value else None

    async def set_override(self, chat_id: int, engine: str, field: str, value: str | None) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(chat_id, create=True)
            assert entry is not None
            overrides = entry.setdefault("engine_overrides", {})
            item = overrides.setdefault(engine, {"model": None, "reasoning": None})
            item[field] = value
            if not item.get("model") and not item.get("reasoning"):
                overrides.pop(engine, None)
            self._commit(chat_id)


__all__ = ["STATE_FILENAME", "ChatPrefsStore", "EngineOverride"]
