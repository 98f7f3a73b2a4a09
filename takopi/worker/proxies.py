"""Objects a transport (or command) worker hands to plugin code in place of the supervisor's.

- :class:`RuntimeProxy` — the ``TransportRuntime`` API; sync methods use ``call_blocking``
  (plugins call them from their own loop thread) or a snapshot pushed by the supervisor.
- :class:`RunnerProxy` — what ``runtime.resolve_runner().runner`` is: ``engine``, sync resume
  helpers answered from the engine's shipped regex when possible, and ``run()`` streaming
  events from the engine worker through the supervisor's run registry.
- :class:`CommandBackendProxy` — what ``get_command()`` returns in a transport worker.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import anyio

from takopi.logging import get_logger
from takopi.model import CompletedEvent, EngineId, ResumeToken, TakopiEvent
from takopi.protocol import (
    CommandDescription,
    CommandInvocation,
    Delivery,
    ResumeCodecInfo,
    ResumeLine,
    RunAddress,
    RunnerChoice,
    RuntimeSnapshot,
    StartRun,
)
from takopi.protocol.runs import ALREADY_ANSWERED
from takopi.transport import MessageRef
from takopi.worker.drain import TRACKER

if TYPE_CHECKING:
    from takopi.rpc import Peer

log = get_logger(__name__)

# Run stream window: the supervisor relays the engine's batches (up to 512 events) verbatim,
# and a relayed batch must fit in what the consumer is sure to grant (window - window // 4).
# Windows count events, not bytes: with the engine's window and the supervisor's channel, a
# stalled consumer holds at most ~6.6k events of one run in flight.
RUN_WINDOW = 2048


class _ResumeCodec:
    """An engine's resume regex, shipped once by its worker."""

    def __init__(self, info: ResumeCodecInfo) -> None:
        self.regex: re.Pattern[str] | None = None
        if info.pattern is not None:
            try:
                self.regex = re.compile(info.pattern, info.flags)
            except re.error:
                self.regex = None
        self.local_line = info.local_line and self.regex is not None
        self.local_extract = info.local_extract and self.regex is not None

    def is_resume_line(self, line: str) -> bool:
        assert self.regex is not None
        return bool(self.regex.match(line))

    def extract(self, engine: EngineId, text: str | None) -> ResumeToken | None:
        assert self.regex is not None
        if not text:
            return None
        found: str | None = None
        for match in self.regex.finditer(text):
            token = match.group("token")
            if token:
                found = token
        return ResumeToken(engine=engine, value=found) if found else None


class Snapshot:
    """The supervisor's view of engines and settings, refreshed by ``runtime.changed``."""

    def __init__(self, value: RuntimeSnapshot) -> None:
        self.revision = -1
        self.update(value)

    def update(self, value: RuntimeSnapshot) -> None:
        """Replace the snapshot (called from the peer loop; plain attribute swaps)."""
        self.revision += 1
        self.value = value
        self.codecs = {engine: _ResumeCodec(info) for engine, info in value.engines.items()}


class RunnerProxy:
    """A runner living in an engine worker, reached through the supervisor."""

    def __init__(self, peer: Peer, engine: EngineId, snapshot: Snapshot) -> None:
        self._peer = peer
        self.engine = engine
        self._snapshot = snapshot
        self._lines: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"RunnerProxy(engine={self.engine!r})"

    def _codec(self) -> _ResumeCodec | None:
        return self._snapshot.codecs.get(self.engine)

    def _remember(self, token: str, line: str) -> None:
        self._lines[token] = line
        self._lines.move_to_end(token)
        while len(self._lines) > 256:
            self._lines.popitem(last=False)

    def format_resume(self, token: ResumeToken) -> str:
        """The engine's resume line (cached from the run stream, else asked for)."""
        if token.engine != self.engine:
            raise RuntimeError(f"resume token is for engine {token.engine!r}, not {self.engine!r}")
        cached = self._lines.get(token.value)
        if cached is not None:
            return cached
        line = str(self._peer.call_blocking("engine.format_resume", self.engine, token, timeout=30))
        self._remember(token.value, line)
        return line

    def is_resume_line(self, line: str) -> bool:
        """Whether ``line`` is this engine's resume line."""
        codec = self._codec()
        if codec is not None and codec.local_line:
            return codec.is_resume_line(line)
        return bool(
            self._peer.call_blocking("engine.is_resume_line", self.engine, line, timeout=30)
        )

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The engine's resume token in ``text`` (last match wins)."""
        codec = self._codec()
        if codec is not None and codec.local_extract:
            return codec.extract(self.engine, text)
        return self._peer.call_blocking("engine.extract_resume", self.engine, text, timeout=30)  # type: ignore[no-any-return]

    async def run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """Stream the run's events; leaving early cancels the run explicitly."""
        from takopi.runner_bridge import current_run_origin
        from takopi.runners.run_options import get_run_options
        from takopi.utils.paths import get_run_base_dir

        run_origin = current_run_origin.get()
        address: RunAddress | None = None
        if run_origin is not None:
            progress = run_origin.progress_ref
            address = RunAddress(
                channel_id=run_origin.channel_id,
                message_id=run_origin.message_id,
                thread_id=run_origin.thread_id,
                progress_message_id=progress.message_id if progress is not None else None,
                context_line=run_origin.context_line,
            )
        # A stopping transport worker lets this reply go out first; runner_bridge consumes
        # the run in a child task and sends the final message from its parent.
        delivery = TRACKER.enter(with_parent=True)
        cwd = get_run_base_dir()
        options = get_run_options()
        run_id = uuid.uuid4().hex
        finished = False
        _IN_FLIGHT.add(run_id)
        if run_origin is not None:
            # Acknowledge only once handle_message has really sent the terminal message: a
            # transport killed between "event consumed" and "message sent" must leave the
            # outcome in the journal for its successor.
            async def settled(delivered: bool) -> None:
                try:
                    if finished and delivered:
                        await self._ack(run_id)
                finally:
                    _IN_FLIGHT.discard(run_id)

            run_origin.on_settled.append(settled)
        request = StartRun(
            engine=self.engine,
            prompt=prompt,
            resume=resume,
            cwd=str(cwd) if cwd is not None else None,
            model=options.model if options is not None else None,
            reasoning=options.reasoning if options is not None else None,
            run_id=run_id,
            address=address,
        )
        async with self._peer.stream("run", request, window=RUN_WINDOW) as items:
            try:
                async for item in items:
                    if isinstance(item, ResumeLine):
                        self._remember(item.token, item.line)
                        continue
                    if isinstance(item, CompletedEvent):
                        finished = True
                        if delivery is not None:
                            delivery.terminal = True
                    yield item
                    if finished and run_origin is None:
                        # No handle_message around this run: taking the terminal event is
                        # all the consumer does, so the outcome is delivered now.
                        await self._ack(run_id)
            finally:
                if run_origin is None or not finished:
                    _IN_FLIGHT.discard(run_id)
                if not finished and not TRACKER.stopping:
                    # The consumer left early (cancel): tell the supervisor before the stream
                    # closes so it cancels the run instead of finishing it for the journal.
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        try:
                            await self._peer.notify("run.cancel", run_id)
                        except Exception as exc:
                            log.warning("runner_proxy.cancel_failed", error=str(exc))

    async def _ack(self, run_id: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self._peer.notify("run.ack", run_id)
            except Exception as exc:
                log.warning("runner_proxy.ack_failed", error=str(exc))


_IN_FLIGHT: set[str] = set()
"""Run ids this worker is still delivering; their journal entries are not "pending"."""


class _RouterProxy:
    """``runtime._router`` reach-through used by some plugins (slack)."""

    def __init__(self, runtime: RuntimeProxy) -> None:
        self._runtime = runtime

    def resolve_resume(self, text: str | None, reply_text: str | None = None) -> ResumeToken | None:
        return self._runtime._call("router.resolve_resume", text=text, reply_text=reply_text)  # type: ignore[no-any-return]

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        return self._runtime._call("router.extract_resume", text=text)  # type: ignore[no-any-return]

    def is_resume_line(self, line: str) -> bool:
        return self._runtime.is_resume_line(line)

    @property
    def engine_ids(self) -> tuple[str, ...]:
        return self._runtime.engine_ids

    @property
    def default_engine(self) -> str:
        return self._runtime.default_engine


class RuntimeProxy:
    """Stands in for ``TransportRuntime`` inside a worker (same method names)."""

    def __init__(self, peer: Peer, snapshot: Snapshot) -> None:
        self._peer = peer
        self._snapshot = snapshot
        self._runners: dict[str, RunnerProxy] = {}
        self._router = _RouterProxy(self)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        TRACKER.note_loop()
        return self._peer.call_blocking(f"runtime.{method}", *args, timeout=60, **kwargs)

    def runner_proxy(self, engine: EngineId) -> RunnerProxy:
        """The (cached) runner proxy of ``engine``."""
        proxy = self._runners.get(engine)
        if proxy is None:
            proxy = RunnerProxy(self._peer, engine, self._snapshot)
            self._runners[engine] = proxy
        return proxy

    # -- snapshot attributes ----------------------------------------------------------------
    @property
    def default_engine(self) -> EngineId:
        """The global default engine."""
        return self._snapshot.value.default_engine

    @property
    def engine_ids(self) -> tuple[EngineId, ...]:
        """Every configured engine id, sorted."""
        return tuple(self._snapshot.value.engine_ids)

    @property
    def allowlist(self) -> tuple[str, ...] | None:
        """Plugin distribution allowlist."""
        value = self._snapshot.value.allowlist
        return tuple(value) if value is not None else None

    @property
    def revision(self) -> int:
        """Bumped by every snapshot the supervisor pushes (a reload, an engine becoming
        ready or quarantined): transports watch it to refresh what they show."""
        return self._snapshot.revision

    @property
    def config_path(self) -> Path | None:
        """The active config file."""
        value = self._snapshot.value.config_path
        return Path(value) if value else None

    @property
    def watch_config(self) -> bool:
        """Whether hot reload is on (the supervisor does the watching)."""
        return self._snapshot.value.watch_config

    @property
    def _projects(self) -> Any:
        return self._call("projects")

    # -- engines ------------------------------------------------------------------------------
    def available_engine_ids(self) -> tuple[EngineId, ...]:
        """Engines that can run."""
        return tuple(self._call("available_engine_ids"))

    def missing_engine_ids(self) -> tuple[EngineId, ...]:
        """Engines whose CLI is missing."""
        return tuple(self._call("missing_engine_ids"))

    def engine_ids_with_status(self, status: str) -> tuple[EngineId, ...]:
        """Engines with ``status``."""
        return tuple(self._call("engine_ids_with_status", status))

    def resolve_engine(self, *, engine_override: EngineId | None, context: Any) -> EngineId:
        """Override, else project default, else global default."""
        return str(self._call("resolve_engine", engine_override=engine_override, context=context))

    def resolve_runner(
        self, *, resume_token: ResumeToken | None, engine_override: EngineId | None
    ) -> Any:
        """A ``ResolvedRunner`` whose runner is a :class:`RunnerProxy`."""
        from takopi.transport_runtime import ResolvedRunner

        choice: RunnerChoice = self._call(
            "resolve_runner", resume_token=resume_token, engine_override=engine_override
        )
        return ResolvedRunner(
            engine=choice.engine,
            runner=self.runner_proxy(choice.engine),
            available=choice.available,
            issue=choice.issue,
        )

    def is_resume_line(self, line: str) -> bool:
        """True when any engine recognises ``line`` (answered locally when possible)."""
        codecs = self._snapshot.codecs
        engines = self.engine_ids
        if engines and all(e in codecs and codecs[e].local_line for e in engines):
            return any(codecs[e].is_resume_line(line) for e in engines)
        return bool(self._call("is_resume_line", line))

    # -- projects and contexts ----------------------------------------------------------------
    def project_aliases(self) -> tuple[str, ...]:
        """Project aliases."""
        return tuple(self._call("project_aliases"))

    def normalize_project_key(self, value: str) -> str | None:
        """Project key for an alias."""
        return self._call("normalize_project_key", value)  # type: ignore[no-any-return]

    def project_alias_for_key(self, key: str) -> str:
        """Alias for a project key."""
        return str(self._call("project_alias_for_key", key))

    def project_default_engine(self, key: str | None) -> EngineId | None:
        """A project's default engine."""
        return self._call("project_default_engine", key)  # type: ignore[no-any-return]

    def default_context_for_chat(self, chat_id: int | str | None) -> Any:
        """Context of the project bound to a chat."""
        return self._call("default_context_for_chat", chat_id)

    def format_context_line(self, context: Any) -> str | None:
        """`` `ctx: alias @branch` `` or None."""
        if context is None:
            return None
        return self._call("format_context_line", context)  # type: ignore[no-any-return]

    def resolve_run_cwd(self, context: Any) -> Path | None:
        """The run's working directory (ConfigError on problems, as in-process)."""
        value = self._call("resolve_run_cwd", context)
        return Path(value) if value is not None else None

    def plugin_config(self, plugin_id: str) -> dict[str, Any]:
        """``[plugins.<plugin_id>]``."""
        return dict(self._call("plugin_config", plugin_id))

    def resolve_message(
        self,
        *,
        text: str,
        reply_text: str | None = None,
        ambient_context: Any = None,
        chat_id: int | str | None = None,
    ) -> Any:
        """Directives, ``ctx:`` and resume resolution (done by the supervisor)."""
        return self._call(
            "resolve_message",
            text=text,
            reply_text=reply_text,
            ambient_context=ambient_context,
            chat_id=chat_id,
        )

    # -- extensions (not in the reference TransportRuntime) -----------------------------------
    def command_ids(self) -> list[str]:
        """Command plugins the supervisor can start, including ones in other interpreters."""
        return [str(i) for i in self._call("command_ids")]

    def pending_deliveries(self) -> list[Delivery]:
        """Outcomes of runs whose consumer was lost (journal); deliver each, then
        ``ack_delivery(delivery.delivery_id)``."""
        records: list[Delivery] = self._call("pending_deliveries")
        return [d for d in records if d.delivery_id not in _IN_FLIGHT]

    def ack_delivery(self, delivery_id: str) -> bool:
        """Mark a pending delivery as delivered."""
        return bool(self._call("ack_delivery", delivery_id))

    async def note_incoming(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None, seq: int | None = None
    ) -> bool | str:
        """A message was taken from the chat (call before confirming it to the chat
        service; ``seq``: its position there, e.g. the Telegram ``update_id``): if this
        worker dies before it ran, the next one replies ``interrupted``
        (:mod:`takopi.supervisor.intake`). True for a new message;
        :data:`~takopi.protocol.runs.ALREADY_ANSWERED` when it was answered already (offered
        again by the chat service): the transport must ignore it."""
        address = RunAddress(channel_id=channel_id, message_id=message_id, thread_id=thread_id)
        answer = await self._peer.call("run.intake", address, seq, timeout=30)
        return ALREADY_ANSWERED if answer == ALREADY_ANSWERED else bool(answer)

    async def incoming_handled(
        self, *, channel_id: Any, message_id: Any, thread_id: Any = None
    ) -> None:
        """The handling of a message reported by :meth:`note_incoming` is over."""
        address = RunAddress(channel_id=channel_id, message_id=message_id, thread_id=thread_id)
        await self._peer.notify("run.intake_done", address)


class CommandBackendProxy:
    """``get_command()`` in a transport worker: ``handle`` runs in the command's worker."""

    def __init__(self, peer: Peer, command_id: str, description: str) -> None:
        self._peer = peer
        self.id = command_id
        self.description = description

    def __repr__(self) -> str:
        return f"CommandBackendProxy(id={self.id!r})"

    async def handle(self, ctx: Any) -> Any:
        """Ship ``ctx`` (executor by reference) to the command worker and return its result."""
        TRACKER.enter()
        executor = ctx.executor
        attrs = {}
        default_context = getattr(executor, "default_context", None)
        if default_context is not None:
            attrs["default_context"] = default_context
        invocation = CommandInvocation(
            command=ctx.command,
            text=ctx.text,
            args_text=ctx.args_text,
            args=tuple(ctx.args),
            message=_plain_ref(ctx.message),
            reply_to=_plain_ref(ctx.reply_to),
            reply_text=ctx.reply_text,
            config_path=str(ctx.config_path) if ctx.config_path else None,
            plugin_config=dict(ctx.plugin_config or {}),
            executor=self._peer.export(executor, attrs=attrs),
        )
        return await self._peer.call("command.handle", self.id, invocation)


@overload
def _plain_ref(ref: MessageRef) -> MessageRef: ...
@overload
def _plain_ref(ref: MessageRef | None) -> MessageRef | None: ...
def _plain_ref(ref: MessageRef | None) -> MessageRef | None:
    """A MessageRef without its transport-native ``raw`` (kept only if plain data)."""
    if ref is None:
        return None
    raw = (
        ref.raw
        if isinstance(ref.raw, str | int | float | bool | dict | list | type(None))
        else None
    )
    return MessageRef(
        channel_id=ref.channel_id,
        message_id=ref.message_id,
        raw=raw,
        thread_id=ref.thread_id,
        sender_id=ref.sender_id,
    )


def make_command_resolver(peer: Peer) -> Callable[..., CommandBackendProxy | None]:
    """A resolver for :func:`takopi.commands.set_command_resolver` asking the supervisor."""
    from takopi.config import ConfigError

    cache: dict[str, CommandBackendProxy] = {}

    def resolve(
        command_id: str, *, allowlist: Any = None, required: bool = True
    ) -> CommandBackendProxy | None:
        if command_id in cache:
            return cache[command_id]
        info: CommandDescription = peer.call_blocking("command.describe", command_id, timeout=60)
        if info.error is not None:
            if required:
                raise ConfigError(info.error)
            log.warning("commands.load_failed", command=command_id, error=info.error)
            return None
        proxy = CommandBackendProxy(peer, command_id, info.description)
        cache[command_id] = proxy
        return proxy

    return resolve


def make_command_lister(peer: Peer) -> Callable[..., list[str]]:
    """A lister for :func:`takopi.commands.set_command_lister`: this interpreter's command
    entry points plus the supervisor's command ids (which include those of
    ``[plugins.<id>] python`` interpreters). If the supervisor cannot answer, the local entry
    points alone are listed."""

    def list_ids(*, allowlist: Any = None) -> list[str]:
        from takopi import plugins
        from takopi.ids import RESERVED_COMMAND_IDS

        ids = set(
            plugins.list_ids(
                plugins.COMMAND_GROUP, allowlist=allowlist, reserved_ids=RESERVED_COMMAND_IDS
            )
        )
        try:
            ids.update(str(i) for i in peer.call_blocking("runtime.command_ids", timeout=60))
        except Exception as exc:
            log.warning("commands.list_failed", error=str(exc))
        return sorted(ids)

    return list_ids


__all__ = [
    "CommandBackendProxy",
    "RunnerProxy",
    "RuntimeProxy",
    "Snapshot",
    "make_command_lister",
    "make_command_resolver",
]
