"""Engine routing: which runner handles a message, and which resume line belongs to whom.

Engines are kept in alphabetical order ("router order"); resume extraction polls every runner in
that order and the first runner that recognises a line wins. Within one runner the last matching
line wins (that is the runner's own ``extract_resume`` contract).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from takopi.model import EngineId, ResumeToken

if TYPE_CHECKING:
    from takopi.runner import Runner

EngineStatus: TypeAlias = Literal["ok", "missing_cli", "bad_config", "load_error"]

_AVAILABLE_STATUSES: frozenset[str] = frozenset({"ok", "bad_config"})


class RunnerUnavailableError(RuntimeError):
    """The selected engine cannot run (CLI missing, failed to load, not configured…)."""

    def __init__(self, engine: EngineId, issue: str | None = None) -> None:
        message = f"engine {engine!r} is unavailable"
        if issue:
            message = f"{message}: {issue}"
        super().__init__(message)
        self.engine = engine
        self.issue = issue


@dataclass(frozen=True, slots=True)
class RunnerEntry:
    """One engine known to the router, with its health.

    ``status``: ``ok``, ``missing_cli``, ``bad_config`` (runner built with a config warning) or
    ``load_error``. ``issue`` is the human-readable reason when not ``ok``.
    """

    engine: EngineId
    runner: Runner
    status: EngineStatus = "ok"
    issue: str | None = None

    @property
    def available(self) -> bool:
        """Whether runs may be started on this engine."""
        return self.status in _AVAILABLE_STATUSES


class AutoRouter:
    """Selects runners by resume token, engine override or the default engine."""

    __slots__ = ("_default_engine", "_entries", "_order")

    def __init__(self, entries: Iterable[RunnerEntry], default_engine: EngineId) -> None:
        by_engine: dict[EngineId, RunnerEntry] = {}
        for entry in entries:
            if entry.engine in by_engine:
                raise ValueError(f"duplicate engine {entry.engine!r} in router entries")
            by_engine[entry.engine] = entry
        if default_engine not in by_engine:
            known = ", ".join(sorted(by_engine)) or "none"
            raise ValueError(
                f"default engine {default_engine!r} is not configured (known: {known})"
            )
        self._order: tuple[EngineId, ...] = tuple(sorted(by_engine))
        self._entries = by_engine
        self._default_engine = default_engine

    @property
    def entries(self) -> tuple[RunnerEntry, ...]:
        """All entries in router (alphabetical) order."""
        return tuple(self._entries[engine] for engine in self._order)

    @property
    def available_entries(self) -> tuple[RunnerEntry, ...]:
        """Entries whose engine can run, in router order."""
        return tuple(entry for entry in self.entries if entry.available)

    @property
    def engine_ids(self) -> tuple[EngineId, ...]:
        """Every engine id, sorted."""
        return self._order

    @property
    def default_engine(self) -> EngineId:
        """The engine used when nothing else selects one."""
        return self._default_engine

    @property
    def default_entry(self) -> RunnerEntry:
        """The default engine's entry."""
        return self._entries[self._default_engine]

    def entry_for_engine(self, engine: EngineId | None) -> RunnerEntry:
        """The entry for ``engine`` (None = default); unknown engines raise
        :class:`RunnerUnavailableError`."""
        if engine is None:
            return self.default_entry
        entry = self._entries.get(engine)
        if entry is None:
            raise RunnerUnavailableError(engine, "engine not configured")
        return entry

    def entry_for(self, selector: ResumeToken | EngineId | None) -> RunnerEntry:
        """The entry for a resume token (its engine), an engine id, or None (default)."""
        if isinstance(selector, ResumeToken):
            return self.entry_for_engine(selector.engine)
        return self.entry_for_engine(selector)

    def runner_for(
        self,
        resume_token: ResumeToken | None = None,
        engine_override: EngineId | None = None,
    ) -> Runner:
        """The runner for a run: the token's engine wins, then the override, then the default.

        Raises :class:`RunnerUnavailableError` when that engine cannot run.
        """
        if resume_token is not None:
            entry = self.entry_for_engine(resume_token.engine)
        else:
            entry = self.entry_for_engine(engine_override)
        if not entry.available:
            raise RunnerUnavailableError(entry.engine, entry.issue)
        return entry.runner

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The resume token in ``text``: first runner (router order) that finds one wins."""
        if not text:
            return None
        for entry in self.entries:
            token = entry.runner.extract_resume(text)
            if token is not None:
                return token
        return None

    def resolve_resume(self, text: str | None, reply_text: str | None = None) -> ResumeToken | None:
        """Resume token from the message itself, else from the replied-to message."""
        token = self.extract_resume(text)
        if token is not None:
            return token
        return self.extract_resume(reply_text)

    def is_resume_line(self, line: str) -> bool:
        """True when any runner recognises ``line`` as one of its resume lines."""
        return any(entry.runner.is_resume_line(line) for entry in self.entries)

    def format_resume(self, token: ResumeToken) -> str:
        """The resume line for ``token``, formatted by its engine's runner."""
        return self.entry_for_engine(token.engine).runner.format_resume(token)


__all__ = ["AutoRouter", "EngineStatus", "RunnerEntry", "RunnerUnavailableError"]
