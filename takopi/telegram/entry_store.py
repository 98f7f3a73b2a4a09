"""The shape the Telegram state files share: one table of entries, one dict of fields each.

``telegram_chat_prefs_state.json`` and ``telegram_chat_sessions_state.json`` keep theirs
under ``chats``, ``telegram_topics_state.json`` under ``threads``. :class:`EntryStateStore`
finds, creates and drops those entries; :class:`SettingsStateStore` adds the settings that
chats and topics both have (plain fields such as ``default_engine``, and per-engine
``engine_overrides``); :func:`stored_session` / :func:`store_session` read and write the
``sessions`` table of an entry (``{"<engine>": {"resume": "<token>"}}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from takopi.model import ResumeToken

from .state_store import CheckedShape, JsonStateStore

Entry = dict[str, Any]
EntryKey = int | str
"""A chat id or a ``<chat_id>:<thread_id>`` / ``<chat_id>:<sender>`` key (stored as text)."""


class StoredSession(TypedDict, total=False):
    """One engine's item in an entry's ``sessions`` table."""

    resume: str


class EngineOverride(TypedDict, total=False):
    """One engine's item in an entry's ``engine_overrides`` table."""

    model: str | None
    reasoning: str | None


class SettingsEntry(TypedDict, total=False):
    """The fields chat and topic entries share (each file's entry shape extends it)."""

    default_engine: str | None
    trigger_mode: str | None
    engine_overrides: dict[str, EngineOverride]


class EntryStateStore(JsonStateStore[dict[str, Any]]):
    """A state file whose entries live in the table ``self._state[table]``.

    ``new_entry()`` is the entry written on first use; ``is_empty(entry)`` says when an
    entry holds nothing any more (it is then removed by :meth:`_commit`); ``new_state()`` is
    the content of a new file (default: the version and an empty table)."""

    def __init__(
        self,
        path: Path,
        *,
        table: str,
        version: int,
        shape: CheckedShape,
        new_entry: Callable[[], Entry],
        is_empty: Callable[[Entry], bool],
        log_prefix: str,
        logger: Any,
        new_state: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            path,
            version=version,
            state_type=shape,
            state_factory=new_state or (lambda: {"version": version, table: {}}),
            log_prefix=log_prefix,
            logger=logger,
        )
        self._table_name = table
        self._new_entry = new_entry
        self._is_empty = is_empty

    @asynccontextmanager
    async def _current(self) -> AsyncIterator[None]:
        """Hold the lock with the state re-read if the file changed on disk."""
        async with self._lock:
            self._reload_locked_if_needed()
            yield

    def _table(self) -> dict[str, Any]:
        table = self._state.get(self._table_name)
        if not isinstance(table, dict):
            table = {}
            self._state[self._table_name] = table
        return table

    def _entry(self, key: EntryKey, *, create: bool) -> Entry | None:
        table = self._table()
        entry = table.get(str(key))
        if not isinstance(entry, dict):
            if not create:
                return None
            entry = self._new_entry()
            table[str(key)] = entry
        return entry

    def _commit(self, key: EntryKey) -> None:
        """Save, dropping the entry of ``key`` first when nothing is left in it."""
        entry = self._entry(key, create=False)
        if entry is not None and self._is_empty(entry):
            self._table().pop(str(key), None)
        self._save_locked()


def overrides_empty(entry: Entry) -> bool:
    """No engine of ``entry`` has a model or reasoning override."""
    overrides = entry.get("engine_overrides") or {}
    return not any(
        v.get("model") or v.get("reasoning") for v in overrides.values() if isinstance(v, dict)
    )


class SettingsStateStore(EntryStateStore):
    """Entries with plain settings fields and ``engine_overrides`` (chats and topics)."""

    async def get(self, key: EntryKey, field: str) -> Any:
        async with self._current():
            entry = self._entry(key, create=False)
            return entry.get(field) if entry else None

    async def set(self, key: EntryKey, field: str, value: Any) -> None:
        async with self._current():
            entry = self._entry(key, create=True)
            assert entry is not None
            entry[field] = value
            self._commit(key)

    async def get_override(self, key: EntryKey, engine: str, field: str) -> str | None:
        """The ``model`` or ``reasoning`` override of ``engine`` (None when unset)."""
        async with self._current():
            overrides = (self._entry(key, create=False) or {}).get("engine_overrides") or {}
            value = (overrides.get(engine) or {}).get(field)
            return value if isinstance(value, str) and value else None

    async def set_override(self, key: EntryKey, engine: str, field: str, value: str | None) -> None:
        """Set (or with None clear) an override; an engine with none left is removed."""
        async with self._current():
            entry = self._entry(key, create=True)
            assert entry is not None
            overrides = entry.setdefault("engine_overrides", {})
            item = overrides.setdefault(engine, {"model": None, "reasoning": None})
            item[field] = value
            if not item.get("model") and not item.get("reasoning"):
                overrides.pop(engine, None)
            self._commit(key)


def stored_session(entry: Entry | None, engine: str) -> ResumeToken | None:
    """The resume token ``entry`` keeps for ``engine``, if a valid one."""
    sessions = (entry or {}).get("sessions")
    item = sessions.get(engine) if isinstance(sessions, dict) else None
    value = item.get("resume") if isinstance(item, dict) else None
    if not isinstance(value, str) or not value:
        return None
    return ResumeToken(engine=engine, value=value)


def store_session(entry: Entry, token: ResumeToken) -> bool:
    """Keep ``token`` as ``entry``'s session for its engine; False when it already was."""
    sessions = entry.get("sessions")
    if not isinstance(sessions, dict):
        sessions = {}
        entry["sessions"] = sessions
    if sessions.get(token.engine) == {"resume": token.value}:
        return False
    sessions[token.engine] = {"resume": token.value}
    return True


__all__ = [
    "EngineOverride",
    "EntryStateStore",
    "SettingsEntry",
    "SettingsStateStore",
    "StoredSession",
    "overrides_empty",
    "store_session",
    "stored_session",
]
