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

from .chat_prefs import EngineOverride
from .chat_sessions import StoredSession
from .state_store import CheckedShape, JsonStateStore

STATE_FILENAME = "telegram_topics_state.json"
STATE_VERSION = 1

log = get_logger(__name__)


class _StoredContext(TypedDict, total=False):
    project: str | None
    branch: str | None


class _ThreadEntry(TypedDict, total=False):
    context: _StoredContext | None
    sessions: dict[str, StoredSession]
    topic_title: str | None
    default_engine: str | None
    trigger_mode: str | None
    engine_overrides: dict[str, EngineOverride]


class _TopicsFile(TypedDict, total=False):
    version: int
    threads: dict[str, _ThreadEntry]


_SHAPE = CheckedShape(_TopicsFile)


def _new_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "threads": {}}


def _empty(entry: dict[str, Any]) -> bool:
    overrides = entry.get("engine_overrides") or {}
    return (
        not entry.get("context")
        and not entry.get("sessions")
        and not any(entry.get(k) for k in ("topic_title", "default_engine", "trigger_mode"))
        and not any(
            v.get("model") or v.get("reasoning") for v in overrides.values() if isinstance(v, dict)
        )
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


class TopicStateStore(JsonStateStore[dict[str, Any]]):
    """Per-topic bindings, sessions and settings, keyed ``<chat_id>:<thread_id>``."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            version=STATE_VERSION,
            state_type=_SHAPE,
            state_factory=_new_state,
            log_prefix="telegram.topics",
            logger=log,
        )

    def _threads(self) -> dict[str, Any]:
        threads = self._state.get("threads")
        if not isinstance(threads, dict):
            threads = {}
            self._state["threads"] = threads
        return threads

    def _entry(self, key: str, *, create: bool) -> dict[str, Any] | None:
        threads = self._threads()
        entry = threads.get(key)
        if not isinstance(entry, dict):
            if not create:
                return None
            entry = {
                "context": None,
                "sessions": {},
                "topic_title": None,
                "default_engine": None,
                "trigger_mode": None,
                "engine_overrides": {},
            }
            threads[key] = entry
        return entry

    def _commit(self, key: str) -> None:
        entry = self._entry(key, create=False)
        if entry is not None and _empty(entry):
            self._threads().pop(key, None)
        self._save_locked()

    # -- plain fields -------------------------------------------------------------------
    async def get(self, key: str, field: str) -> Any:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(key, create=False)
            return entry.get(field) if entry else None

    async def set(self, key: str, field: str, value: Any) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(key, create=True)
            assert entry is not None
            entry[field] = value
            self._commit(key)

    # -- context binding ----------------------------------------------------------------
    async def get_context(self, key: str) -> RunContext | None:
        async with self._lock:
            self._reload_locked_if_needed()
            return _context(self._entry(key, create=False))

    async def set_context(
        self, key: str, context: RunContext | None, *, title: str | None = None
    ) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
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
        async with self._lock:
            self._reload_locked_if_needed()
            found = []
            for key, entry in self._threads().items():
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
        async with self._lock:
            self._reload_locked_if_needed()
            if self._threads().pop(key, None) is not None:
                self._save_locked()

    # -- sessions -----------------------------------------------------------------------
    async def get_session(self, key: str, engine: str) -> ResumeToken | None:
        async with self._lock:
            self._reload_locked_if_needed()
            sessions = (self._entry(key, create=False) or {}).get("sessions")
            item = sessions.get(engine) if isinstance(sessions, dict) else None
            value = item.get("resume") if isinstance(item, dict) else None
            if not isinstance(value, str) or not value:
                return None
            return ResumeToken(engine=engine, value=value)

    async def session_engines(self, key: str) -> list[str]:
        async with self._lock:
            self._reload_locked_if_needed()
            sessions = (self._entry(key, create=False) or {}).get("sessions")
            return sorted(sessions) if isinstance(sessions, dict) else []

    async def set_session(self, key: str, token: ResumeToken) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(key, create=True)
            assert entry is not None
            sessions = entry.get("sessions")
            if not isinstance(sessions, dict):
                sessions = {}
                entry["sessions"] = sessions
            if sessions.get(token.engine) == {"resume": token.value}:
                return
            sessions[token.engine] = {"resume": token.value}
            self._save_locked()

    async def clear_sessions(self, key: str) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(key, create=False)
            if entry is not None and entry.get("sessions"):
                entry["sessions"] = {}
                self._commit(key)

    # -- engine overrides ---------------------------------------------------------------
    async def get_override(self, key: str, engine: str, field: str) -> str | None:
        async with self._lock:
            self._reload_locked_if_needed()
            overrides = (self._entry(key, create=False) or {}).get("engine_overrides") or {}
            value = (overrides.get(engine) or {}).get(field)
            return value if isinstance(value, str) and value else None

    async def set_override(self, key: str, engine: str, field: str, value: str | None) -> None:
        async with self._lock:
            self._reload_locked_if_needed()
            entry = self._entry(key, create=True)
            assert entry is not None
            overrides = entry.setdefault("engine_overrides", {})
            item = overrides.setdefault(engine, {"model": None, "reasoning": None})
            item[field] = value
            if not item.get("model") and not item.get("reasoning"):
                overrides.pop(engine, None)
            self._commit(key)


__all__ = ["STATE_FILENAME", "TopicStateStore"]
