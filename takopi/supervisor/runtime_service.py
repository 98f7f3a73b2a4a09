"""The supervisor's side of the ``TransportRuntime`` proxy, and the engine runner stand-ins
the supervisor's :class:`~takopi.router.AutoRouter` holds.

Runtime methods are executed on a worker thread (``anyio.to_thread``) because the runtime's
sync methods may need a blocking RPC to an engine worker (``extract_resume`` of a runner that
did not ship a resume regex) — never block the supervisor's event loop.

Methods served to transport and command workers (all keyword-compatible with
``TransportRuntime``): ``runtime.<name>`` for ``available_engine_ids``,
``missing_engine_ids``, ``engine_ids_with_status``, ``resolve_engine``, ``resolve_runner``
(returns ``{"engine", "available", "issue"}``), ``is_resume_line``, ``project_aliases``,
``normalize_project_key``, ``project_alias_for_key``, ``project_default_engine``,
``default_context_for_chat``, ``format_context_line``, ``resolve_run_cwd``, ``plugin_config``,
``resolve_message``, ``projects``, ``router.resolve_resume``, ``router.extract_resume``,
``pending_deliveries``, ``ack_delivery``; and ``engine.format_resume(engine, token)``,
``engine.extract_resume(engine, text)``, ``engine.is_resume_line(engine, line)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from takopi.logging import get_logger
from takopi.model import EngineId, ResumeToken, TakopiEvent
from takopi.protocol import Delivery, ResumeCodecInfo, RunnerChoice
from takopi.supervisor.ports import DeliveryBook, EngineAccess, ResumeLines

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.transport_runtime import TransportRuntime

log = get_logger(__name__)

_RUNTIME_METHODS = (
    "available_engine_ids",
    "missing_engine_ids",
    "engine_ids_with_status",
    "resolve_engine",
    "is_resume_line",
    "project_aliases",
    "normalize_project_key",
    "project_alias_for_key",
    "project_default_engine",
    "default_context_for_chat",
    "format_context_line",
    "resolve_run_cwd",
    "plugin_config",
    "resolve_message",
)


class EngineStandIn:
    """A runner in the supervisor's router: resume codec local (shipped regex) or via RPC.

    Its sync methods may block on RPC, so they are only called off the event loop thread.
    ``is_resume_line`` and ``extract_resume`` are *probes*: the router asks every engine about
    every message, so they never wait for or start an engine worker that is not ready (not
    started yet, retired, restarting, crash-looping, quarantined) — they answer from the resume
    regex the engine probe or an earlier incarnation shipped, or "no". A message for engine A
    never waits on engine B.
    """

    def __init__(self, engine: EngineId, engines: EngineAccess, resume_lines: ResumeLines) -> None:
        self.engine = engine
        self._engines = engines
        self._resume_lines = resume_lines
        self.regex: re.Pattern[str] | None = None
        self.local_line = False
        self.local_extract = False

    def update(self, info: ResumeCodecInfo | None) -> None:
        """Take the resume regex an engine worker shipped at load."""
        info = info or ResumeCodecInfo()
        try:
            self.regex = re.compile(info.pattern, info.flags) if info.pattern else None
        except re.error:
            self.regex = None
        self.local_line = info.local_line and self.regex is not None
        self.local_extract = info.local_extract and self.regex is not None
        self._resume_lines.set_template(self.engine, info, self.regex)

    def _blocking(self, method: str, *args: Any) -> Any:
        peer = anyio.from_thread.run(self._engines.wait_ready_peer, self.engine, 30.0)
        if peer is None:
            return None
        return peer.call_blocking(method, *args, timeout=30)

    def _probe(self, method: str, *args: Any) -> tuple[bool, Any]:
        """``(True, answer)`` from a ready engine worker, ``(False, None)`` when there is none
        right now (never waits for one)."""
        peer = anyio.from_thread.run_sync(self._engines.ready_peer, self.engine)
        if peer is None:
            return False, None
        try:
            return True, peer.call_blocking(method, *args, timeout=30)
        except Exception as exc:  # the worker died or hung mid-call: answer without it
            log.warning("engine.probe_failed", engine=self.engine, method=method, error=str(exc))
            return False, None

    def _regex_extract(self, text: str) -> ResumeToken | None:
        assert self.regex is not None
        found = None
        for match in self.regex.finditer(text):
            found = match.group("token") or found
        return ResumeToken(engine=self.engine, value=found) if found else None

    def regex_is_resume_line(self, line: str) -> bool:
        """The shipped regex's answer (no worker asked)."""
        return bool(self.regex is not None and self.regex.match(line))

    def regex_extract_resume(self, text: str | None) -> ResumeToken | None:
        """The shipped regex's answer (no worker asked)."""
        return self._regex_extract(text) if text and self.regex is not None else None

    def is_resume_line(self, line: str) -> bool:
        """Whether ``line`` is this engine's resume line."""
        if self.local_line:
            return self.regex_is_resume_line(line)
        answered, result = self._probe("is_resume_line", line)
        if answered:
            return bool(result)
        return self.regex_is_resume_line(line)

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The last resume token of this engine in ``text``."""
        if not text:
            return None
        if self.local_extract:
            return self._regex_extract(text)
        answered, result = self._probe("extract_resume", text)
        if answered:
            return result if isinstance(result, ResumeToken) else None
        return self.regex_extract_resume(text)

    def format_resume(self, token: ResumeToken) -> str:
        """The engine's resume line (asks the engine worker)."""
        cached = self._resume_lines.get(token)
        if cached is not None:
            return cached
        return str(self._blocking("format_resume", token))

    def run(self, prompt: str, resume: ResumeToken | None) -> Any:  # pragma: no cover
        """Runs go through the run registry, never through this object."""
        raise RuntimeError("engine runs are driven by the supervisor's run registry")

    async def _never(self) -> TakopiEvent:  # pragma: no cover - keeps the Runner shape
        raise RuntimeError


class RuntimeService:
    """Registers the runtime methods on a worker's peer."""

    def __init__(
        self,
        *,
        runtime: Callable[[], TransportRuntime],
        engines: EngineAccess,
        resume_lines: ResumeLines,
        deliveries: DeliveryBook,
        command_ids: Callable[[], list[str]],
        stand_in: Callable[[str], EngineStandIn],
    ) -> None:
        self._runtime = runtime
        self._engines = engines
        self._stand_in = stand_in
        self._resume_lines = resume_lines
        self._deliveries = deliveries
        self._command_ids = command_ids

    def register(self, peer: Peer, *, transport: str | None) -> None:
        """Serve ``runtime.*`` and ``engine.*`` on ``peer``."""
        for name in _RUNTIME_METHODS:
            peer.register(f"runtime.{name}", self._threaded(name))
        peer.register("runtime.resolve_runner", self.resolve_runner)
        peer.register("runtime.projects", self.projects)
        peer.register("runtime.router.resolve_resume", self.resolve_resume)
        peer.register("runtime.router.extract_resume", self.extract_resume)
        peer.register("runtime.command_ids", self.command_ids)
        peer.register("runtime.pending_deliveries", self._pending_for(transport))
        peer.register("runtime.ack_delivery", self.ack_delivery)
        peer.register("engine.format_resume", self.engine_format_resume)
        peer.register("engine.extract_resume", self.engine_extract_resume)
        peer.register("engine.is_resume_line", self.engine_is_resume_line)

    def _threaded(self, name: str) -> Callable[..., Any]:
        async def handler(*args: Any, **kwargs: Any) -> Any:
            method = getattr(self._runtime(), name)
            return await anyio.to_thread.run_sync(lambda: method(*args, **kwargs))

        handler.__name__ = name
        return handler

    async def resolve_runner(
        self, resume_token: ResumeToken | None = None, engine_override: EngineId | None = None
    ) -> RunnerChoice:
        """Engine choice and availability (the runner itself stays in the engine worker)."""
        resolved = self._runtime().resolve_runner(
            resume_token=resume_token, engine_override=engine_override
        )
        return RunnerChoice(
            engine=resolved.engine, available=resolved.available, issue=resolved.issue
        )

    async def projects(self) -> Any:
        """``runtime._projects`` reach-through."""
        return self._runtime()._projects

    async def resolve_resume(self, text: str | None = None, reply_text: str | None = None) -> Any:
        """``runtime._router.resolve_resume``."""
        router = self._runtime()._router
        return await anyio.to_thread.run_sync(lambda: router.resolve_resume(text, reply_text))

    async def extract_resume(self, text: str | None = None) -> Any:
        """``runtime._router.extract_resume``."""
        router = self._runtime()._router
        return await anyio.to_thread.run_sync(lambda: router.extract_resume(text))

    async def command_ids(self) -> list[str]:
        """Command plugins: installed here plus those under a ``[plugins.<id>] python``."""
        return await anyio.to_thread.run_sync(self._command_ids)

    def _pending_for(self, transport: str | None) -> Callable[[], Any]:
        async def pending_deliveries() -> list[Delivery]:
            return self._deliveries.deliveries(transport)

        return pending_deliveries

    async def ack_delivery(self, delivery_id: str) -> bool:
        """A transport delivered a journaled outcome."""
        return self._deliveries.delivered(str(delivery_id))

    async def engine_format_resume(self, engine: str, token: ResumeToken) -> str:
        """Forward ``format_resume`` to the engine worker (cached per token)."""
        cached = self._resume_lines.get(token)
        if cached is not None:
            return cached
        peer = await self._engines.wait_ready_peer(engine, 30.0)
        if peer is None:
            raise RuntimeError(f"engine {engine!r} is unavailable")
        line = str(await peer.call("format_resume", token, timeout=30))
        self._resume_lines.remember(token, line)
        return line

    async def engine_extract_resume(self, engine: str, text: str | None) -> Any:
        """Forward ``extract_resume`` to a ready engine worker, else answer from its regex
        (a probe never starts or waits for a worker)."""
        peer = self._engines.ready_peer(engine)
        if peer is not None:
            try:
                return await peer.call("extract_resume", text, timeout=30)
            except Exception as exc:
                log.warning("engine.probe_failed", engine=engine, error=str(exc))
        return self._stand_in(engine).regex_extract_resume(text)

    async def engine_is_resume_line(self, engine: str, line: str) -> bool:
        """Forward ``is_resume_line`` to a ready engine worker, else answer from its regex."""
        peer = self._engines.ready_peer(engine)
        if peer is not None:
            try:
                return bool(await peer.call("is_resume_line", line, timeout=30))
            except Exception as exc:
                log.warning("engine.probe_failed", engine=engine, error=str(exc))
        return self._stand_in(engine).regex_is_resume_line(line)


__all__ = ["EngineStandIn", "RuntimeService"]
