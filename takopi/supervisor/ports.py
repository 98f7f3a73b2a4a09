"""What the supervisor's services need from the rest of it, as narrow protocols.

:class:`~takopi.supervisor.runs.RunService` and
:class:`~takopi.supervisor.runtime_service.RuntimeService` (and the router's engine stand-ins)
see the engine workers through :class:`EngineAccess`, the journal through
:class:`DeliveryBook`, and start background work through :class:`TaskSpawner` — never through
the arbiter itself.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from takopi.protocol.snapshot import reads_back_token

if TYPE_CHECKING:
    from takopi.model import ResumeToken
    from takopi.protocol import Delivery, ResumeCodecInfo
    from takopi.rpc import Peer
    from takopi.supervisor.process import WorkerProcess


class EngineAccess(Protocol):
    """The engine workers, by engine id."""

    def ready_peer(self, engine: str) -> Peer | None:
        """The ready engine worker's connection, or None (never waits)."""
        ...

    async def wait_ready_peer(self, engine: str, timeout: float) -> Peer | None:
        """Wait (bounded) for the engine worker to be ready; None if it cannot be."""
        ...

    async def acquire(self, engine: str, run_id: str, timeout: float) -> Peer | None:
        """The ready worker for run ``run_id``, counted as in flight on it (see
        :meth:`release`); waits while an operator restart drains the engine."""
        ...

    def release(self, engine: str, run_id: str) -> None:
        """Run ``run_id`` no longer uses the engine worker."""
        ...

    def issue(self, engine: str) -> str:
        """Why ``engine`` cannot run right now."""
        ...

    def process(self, engine: str) -> WorkerProcess | None:
        """The engine's current worker process."""
        ...


class TaskSpawner(Protocol):
    """Runs background tasks that outlive the RPC handler that started them."""

    def spawn_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the supervisor's task group."""
        ...


class DeliveryBook(Protocol):
    """Outcomes owed to chats (the journal)."""

    def deliveries(self, transport: str | None = None) -> list[Delivery]:
        """Pending deliveries (of one transport, or all), oldest first."""
        ...

    def delivered(self, run_id: str) -> bool:
        """A transport delivered ``run_id``'s outcome; False if unknown or already done."""
        ...


class ResumeLines:
    """Formatted resume lines by ``(engine, token)`` (bounded, most recent kept)."""

    def __init__(self, limit: int = 4096) -> None:
        self._lines: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._limit = limit
        self._templates: dict[str, tuple[str, str, re.Pattern[str]]] = {}

    def get(self, token: ResumeToken) -> str | None:
        """The cached line of ``token``."""
        return self._lines.get((token.engine, token.value))

    def remember(self, token: ResumeToken, line: str) -> None:
        """Cache ``line`` for ``token``."""
        key = (token.engine, token.value)
        self._lines[key] = line
        self._lines.move_to_end(key)
        while len(self._lines) > self._limit:
            self._lines.popitem(last=False)

    def set_template(
        self, engine: str, info: ResumeCodecInfo | None, regex: re.Pattern[str] | None
    ) -> None:
        """Take the line template ``engine``'s probe or worker shipped (or forget it)."""
        if info is None or info.line_prefix is None or regex is None:
            self._templates.pop(engine, None)
        else:
            self._templates[engine] = (info.line_prefix, info.line_suffix, regex)

    def from_template(self, token: ResumeToken) -> str | None:
        """``token``'s line built from its engine's template, without asking the engine's
        worker (which may not run yet); None unless the engine's regex reads the token back
        from it (a token with characters the line cannot carry as they are)."""
        template = self._templates.get(token.engine)
        if template is None:
            return None
        prefix, suffix, regex = template
        line = f"{prefix}{token.value}{suffix}"
        return line if reads_back_token(regex, line, token.value) else None


__all__ = ["DeliveryBook", "EngineAccess", "ResumeLines", "TaskSpawner"]
