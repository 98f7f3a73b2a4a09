"""Forum-topic state: ``telegram_topics_state.json`` (next to the config), the reference's
format, so existing bindings load unchanged::

    {"version": 1, "threads": {"<chat_id>:<thread_id>": {
        "context": {"project": str|null, "branch": str|null} | null,
        "sessions": {"<engine>": {"resume": "<token>"}},
        "topic_title": str|null, "default_engine": str|null, "trigger_mode": str|null,
        "engine_overrides": {"<engine>": {"model": str|null, "reasoning": str|null}}}}}

Empty thread entries are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.model import ResumeToken

from .entry_store import (
    SettingsEntry,
    SettingsStateStore,
    StoredSession,
    overrides_empty,
    store_session,
    stored_session,
)
from .state_store import CheckedShape

STATE_FILENAME = "telegram_topics_state.json"
STATE_VERSION = 1

log = get_logger(__name__)


class _StoredContext(TypedDict, total=False):
    project: str | None
    branch: str | None


class _ThreadEntry(SettingsEntry, total=False):
    context: _StoredContext | None
    sessions: dict[str, StoredSession]
    topic_title: str | None


class _TopicsFile(TypedDict, total=False):
    version: int
    threads: dict[str, _ThreadEntry]


_SHAPE = CheckedShape(_TopicsFile)


def _new_entry() -> dict[str, Any]:
    return {
        "context": None,
        "sessions": {},
        "topic_title": None,
        "default_engine": None,
        "trigger_mode": None,
        "engine_overrides": {},
    }


def _empty(entry: dict[str, Any]) -> bool:
    return (
        not entry.get("context")
        and not entry.get("sessions")
        and not any(entry.get(k) for k in ("topic_title", "default_engine", "trigger_mode"))
        and overrides_empty(entry)
    )


def _context(entry: dict[str, Any] | None) -> RunContext | None:
    raw = (entry or {}).get("context")
    if not isinstance(raw, dict):
        return None
    project = raw.get("project") if isinstance(raw.get("project"), str) else None
    branch = raw.get("branch") if isinstance(raw.get("branch"), str) else None
    if not project and not branch:
        return None
    return RunContext(project=project or None, branch=branch or None)


class TopicStateStore(SettingsStateStore):
    """Per-topic bindings, sessions and settings, keyed ``<chat_id>:<thread_id>`` (plain
    fields with ``get``/``set``, overrides with ``get_override``/``set_override``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            table="threads",
            version=STATE_VERSION,
            shape=_SHAPE,
            new_entry=_new_entry,
            is_empty=_empty,
            log_prefix="telegram.topics",
            logger=log,
        )

    # -- context binding ----------------------------------------------------------------
    async def get_context(self, key: str) -> RunContext | None:
        async with self._current():
            return _context(self._entry(key, create=False))

    async def set_context(
        self, key: str, context: RunContext | None, *, title: str | None = None
    ) -> None:
        async with self._current():
            entry = self._entry(key, create=True)
            assert entry is not None
            entry["context"] = (
                {"project": context.project, "branch": context.branch} if context else None
            )
            if title is not None:
                entry["topic_title"] = title
            self._commit(key)

    async def find_bound(self, chat_id: int, context: RunContext) -> list[int]:
        """Thread ids of ``chat_id``'s topics bound to exactly ``context``."""
        prefix = f"{chat_id}:"
        async with self._current():
            found = []
            for key, entry in self._table().items():
                if not key.startswith(prefix) or not isinstance(entry, dict):
                    continue
                bound = _context(entry)
                if bound is not None and (bound.project, bound.branch) == (
                    context.project,
                    context.branch,
                ):
                    try:
                        found.append(int(key[len(prefix) :]))
                    except ValueError:
                        continue
            return found

    async def delete(self, key: str) -> None:
        async with self._current():
            if self._table().pop(key, None) is not None:
                self._save_locked()

    # -- sessions -----------------------------------------------------------------------
    async def get_session(self, key: str, engine: str) -> ResumeToken | None:
        async with self._current():
            return stored_session(self._entry(key, create=False), engine)

    async def session_engines(self, key: str) -> list[str]:
        async with self._current():
            sessions = (self._entry(key, create=False) or {}).get("sessions")
            return sorted(sessions) if isinstance(sessions, dict) else []

    async def set_session(self, key: str, token: ResumeToken) -> None:
        async with self._current():
            entry = self._entry(key, create=True)
            assert entry is not None
            if store_session(entry, token):
                self._save_locked()

    async def clear_sessions(self, key: str) -> None:
        async with self._current():
            entry = self._entry(key, create=False)
            if entry is not None and entry.get("sessions"):
                entry["sessions"] = {}
                self._commit(key)


__all__ = ["STATE_FILENAME", "TopicStateStore"]
