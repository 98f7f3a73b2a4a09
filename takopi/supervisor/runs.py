"""Driving runs: transport worker → supervisor run registry → engine worker, and back.

The transport worker opens stream ``run(StartRun)``. A *driver* task, owned by the supervisor
(not by that stream), pulls the engine worker's events and hands them to the stream through a
bounded channel, so:

- a slow consumer stops the driver, which stops granting credits to the engine worker
  (bounded memory end to end);
- the consumer's peer being lost only *detaches* the run: the driver keeps going and journals
  the outcome for delivery by the restarted transport;
- an explicit ``run.cancel(run_id)`` (sent by the runner proxy when its consumer leaves early)
  cancels the engine run;
- the engine worker dying ends the run at once with an error naming the cause and the resume
  line (``started`` seen);
- at shutdown, runs still going after the grace period are cancelled with a terminal event.

Stream items are takopi events, plus one :class:`~takopi.protocol.ResumeLine` before
``started`` so the transport side can format the resume line without a round trip. The engine's
event batches are relayed still encoded (:class:`~takopi.rpc.peer.RawBatch`); only a batch that
may hold ``started``/``completed`` (a byte search for their wire tags) is decoded here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from takopi.logging import get_logger
from takopi.model import CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.protocol import EngineRun, ResumeLine, RunAddress, StartRun
from takopi.protocol.runs import ALREADY_ANSWERED
from takopi.rpc import PeerGone
from takopi.rpc.peer import RawBatch
from takopi.supervisor.intake import INTAKE_LOST_ERROR, ORPHAN_GRACE, Intakes, intake_key
from takopi.supervisor.journal import Journal, JournalWriteError, Status
from takopi.supervisor.ports import EngineAccess, ResumeLines, TaskSpawner
from takopi.supervisor.registry import RunRecord, RunRegistry, thread_key

if TYPE_CHECKING:
    from takopi.rpc import Peer
    from takopi.supervisor.process import WorkerProcess

log = get_logger(__name__)

SHUTDOWN_REASON = "shutdown"
DRAIN_TIMEOUT = 10.0
OPERATOR_REASON = "operator"
OPERATOR_ERROR = "cancelled by the operator (takopictl cancel)"
RESTART_REASON = "restart"
RESTART_ERROR = "cancelled: the engine was restarted by the operator (takopictl restart --force)"
SHUTDOWN_ERROR = "cancelled: takopi is shutting down"
JOURNAL_REFUSED = "not started: takopi cannot record this run (delivery journal)"
_CANCEL_ERRORS = {
    SHUTDOWN_REASON: SHUTDOWN_ERROR,
    OPERATOR_REASON: OPERATOR_ERROR,
    RESTART_REASON: RESTART_ERROR,
}

# Engine → supervisor stream window. Credit comes back in quarters of it, so a busy engine
# sends frames of window // 4 = 512 events (MAX_BATCH); smaller windows meant many small
# frames and a per-frame cost that capped throughput. Batches are relayed verbatim to the
# transport, whose window (runner proxy: 2048) must leave room for a whole batch.
ENGINE_WINDOW = 2048
# Items (mostly whole relayed batches of up to ENGINE_WINDOW events) buffered between the
# driver and the consumer: few, so the events in flight stay bounded (a few thousand).
CHANNEL_SIZE = 4
# Tags of the events the supervisor must see decoded (journal, thread key, outcome).
_OBSERVED_TAGS = (b"StartedEvent\0", b"CompletedEvent\0")

Ending = tuple[Status, str] | None
"""How a driver ended a run itself: ``(status, error)`` of the terminal event it owes."""


def _observed(batch: RawBatch) -> bool:
    """Whether ``batch`` may hold an event the supervisor must decode (false positives ok)."""
    return any(batch.contains(tag) for tag in _OBSERVED_TAGS)


@dataclass(slots=True)
class _Drive:
    """One run's driver state: the consumer channel and what the engine said so far."""

    record: RunRecord
    send: MemoryObjectSendStream[Any]
    token: ResumeToken | None
    completed: CompletedEvent | None = None
    answer: str = ""

    async def forward(self, item: Any) -> None:
        """Hand ``item`` to the consumer (waiting for room); a gone consumer detaches."""
        record = self.record
        if not record.consumer_attached:
            return
        try:
            try:
                self.send.send_nowait(item)
            except anyio.WouldBlock:
                await self.send.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            record.consumer_attached = False
            log.info("run.detached", run_id=record.run_id, engine=record.engine)

    async def close_consumer(self) -> None:
        """End the consumer's stream (nothing may follow ``completed``)."""
        with anyio.CancelScope(shield=True):
            await self.send.aclose()


class RunService:
    """Serves ``run`` / ``run.cancel`` / ``run.ack`` to transport workers."""

    def __init__(
        self,
        *,
        registry: RunRegistry,
        journal: Journal,
        engines: EngineAccess,
        tasks: TaskSpawner,
        resume_lines: ResumeLines,
        engine_wait: Callable[[], float],
        orphan_grace: Callable[[], float] = lambda: ORPHAN_GRACE,
    ) -> None:
        self._registry = registry
        self._journal = journal
        self._engines = engines
        self._tasks = tasks
        self.resume_lines = resume_lines
        self._engine_wait = engine_wait
        self._orphan_grace = orphan_grace
        self.intakes = Intakes()
        self.drivers = 0
        self.idle = anyio.Event()
        self.idle.set()

    def register(self, peer: Peer, *, transport: str) -> None:
        """Install the run methods on a transport worker's peer."""

        def run(request: StartRun) -> AsyncIterator[Any]:
            return self.run_stream(request, transport=transport)

        def intake(address: RunAddress, seq: int | None = None) -> bool | str:
            return self.note_intake(transport, asdict(address), seq)

        def intake_done(address: RunAddress) -> None:
            self.intakes.settle(transport, asdict(address))

        peer.register_stream("run", run)
        peer.register("run.cancel", self.cancel)
        peer.register("run.ack", self.ack)
        peer.register("run.intake", intake)
        peer.register("run.intake_done", intake_done)
        grace = self._orphan_grace()
        if self.intakes.regrace(transport, grace):
            self._tasks.spawn_task(self._expire_orphans, transport, grace)

    def note_intake(self, transport: str, origin: dict[str, Any], seq: Any) -> bool | str:
        """``run.intake``: the transport took a message (update ``seq``) and has not
        confirmed it yet. :data:`ALREADY_ANSWERED` when a run began for the message already
        (an ``interrupted`` reply included: its chat service offered it again): the transport
        must ignore it; else True (it is open until handled, see
        :mod:`takopi.supervisor.intake`)."""
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        key = intake_key(origin)
        if key is not None and self._journal.already_answered(transport, key):
            log.info("intake.already_answered", transport=transport, message=key, seq=seq)
            self._owe_interrupted(transport, self.intakes.passed(transport, seq))
            return ALREADY_ANSWERED
        self._owe_interrupted(transport, self.intakes.accept(transport, origin, seq))
        return True

    def transport_lost(self, transport: str) -> None:
        """A transport worker exited: messages it took but never ran are owed a reply
        (``interrupted``, delivered by its successor from the journal) unless the successor
        takes them again (see :mod:`takopi.supervisor.intake`)."""
        grace = self._orphan_grace()
        if self.intakes.orphan(transport, grace):
            self._tasks.spawn_task(self._expire_orphans, transport, grace)

    def stopped(self) -> None:
        """The supervisor is stopping and its transports are gone: every message they took
        and never ran is owed ``interrupted`` now (the next start's transport sends it)."""
        for transport, origins in self.intakes.drain().items():
            log.warning("intake.interrupted_at_stop", transport=transport, messages=len(origins))
            self._owe_interrupted(transport, origins)

    async def _expire_orphans(self, transport: str, delay: float) -> None:
        await anyio.sleep(delay)
        self._owe_interrupted(transport, self.intakes.expired(transport))

    def _owe_interrupted(self, transport: str, origins: list[dict[str, Any]]) -> None:
        """Journal an ``interrupted`` reply to each message (delivered by a transport); the
        journal then knows it answered: offered again by its chat service, it is not handled
        again."""
        for origin in origins:
            run_id = uuid.uuid4().hex
            try:
                self._journal.begin(run_id, transport=transport, engine="", origin=origin)
            except JournalWriteError as exc:
                log.error("intake.undeliverable", transport=transport, error=str(exc))
                continue
            self._journal.outcome(
                run_id, status="interrupted", error=INTAKE_LOST_ERROR, pending=True
            )

    async def cancel(self, run_id: str) -> bool:
        """Explicit cancel from the consumer (user /cancel)."""
        return self._registry.cancel(str(run_id), "cancelled")

    def ack(self, run_id: str) -> bool:
        """The consumer received the terminal event (or a transport delivered a journaled one)."""
        return self._journal.delivered(str(run_id))

    async def _format(self, token: ResumeToken) -> str | None:
        cached = self.resume_lines.get(token)
        if cached is not None:
            return cached
        peer = self._engines.ready_peer(token.engine)
        if peer is None:
            # The worker is not running yet: the template its probe shipped gives the line
            # now, so the journal has it from acceptance on (a crash before the engine
            # starts still answers with the resume line). The worker's own line, once it
            # runs, replaces it (``started``).
            return self.resume_lines.from_template(token)
        try:
            line = str(await peer.call("format_resume", token, timeout=10))
        except Exception as exc:
            log.warning("run.format_resume_failed", engine=token.engine, error=str(exc))
            return None
        self.resume_lines.remember(token, line)
        return line

    async def run_stream(self, request: StartRun, *, transport: str) -> AsyncIterator[Any]:
        """The stream a transport worker consumes for one run."""
        engine, resume = request.engine, request.resume
        origin = asdict(request.address) if request.address is not None else {}
        registry = self._registry
        if not registry.accepting:
            yield CompletedEvent(
                engine=engine,
                ok=False,
                answer="",
                resume=resume,
                error="takopi is shutting down; try again in a moment",
            )
            return
        record = registry.new_run(
            engine=engine, transport=transport, origin=origin, run_id=request.run_id
        )
        send, receive = anyio.create_memory_object_stream[Any](max_buffer_size=CHANNEL_SIZE)
        resume_line = await self._format(resume) if resume is not None else None
        record.resume_line = resume_line
        try:
            self._journal.begin(
                record.run_id,
                transport=transport,
                engine=engine,
                origin=dict(origin),
                resume_line=resume_line,
            )
        except JournalWriteError as exc:
            # Not accepted: its outcome could not survive a crash. Nothing was started.
            self._registry.finish(record.run_id)
            log.error("run.refused", run_id=record.run_id, engine=engine, error=str(exc))
            yield CompletedEvent(
                engine=engine,
                ok=False,
                answer="",
                resume=resume,
                error=f"{JOURNAL_REFUSED}: {exc.strerror or exc}",
            )
            return
        self.intakes.settle(transport, origin)  # the journal has it from here on
        self.drivers += 1
        self.idle = anyio.Event() if self.idle.is_set() else self.idle
        engine_run = EngineRun(
            prompt=request.prompt,
            resume=resume,
            cwd=request.cwd,
            model=request.model,
            reasoning=request.reasoning,
            run_id=record.run_id,
        )
        self._tasks.spawn_task(self._drive, _Drive(record, send, resume), engine_run)
        try:
            async with receive:
                while True:
                    # Drain what is buffered without a checkpoint per item (throughput).
                    try:
                        item = receive.receive_nowait()
                    except anyio.WouldBlock:
                        try:
                            item = await receive.receive()
                        except anyio.EndOfStream:
                            break
                    except anyio.EndOfStream:
                        break
                    yield item
        finally:
            record.consumer_attached = False

    async def _drive(self, drive: _Drive, request: EngineRun) -> None:
        record = drive.record
        try:
            ending = await self._drive_engine(drive, request)
            if ending is not None:
                # Synthesized terminal event: engine death, shutdown, unavailable engine.
                status, error = ending
                if drive.token is not None and error:
                    error += "; reply to resume the session"
                self._journal.outcome(
                    record.run_id,
                    status=status,
                    answer=drive.answer,
                    error=error,
                    resume_line=record.resume_line,
                    pending=True,
                )
                terminal = CompletedEvent(
                    engine=record.engine,
                    ok=False,
                    answer=drive.answer,
                    resume=drive.token,
                    error=error,
                )
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await drive.forward(terminal)
        finally:
            self._registry.finish(record.run_id)
            with anyio.CancelScope(shield=True):
                await drive.send.aclose()
            self.drivers -= 1
            if self.drivers == 0:
                self.idle.set()

    async def _drive_engine(self, drive: _Drive, request: EngineRun) -> Ending:
        """Run against the engine worker; the terminal event owed, or None when the run ended
        by itself or by the consumer's cancel."""
        record = drive.record
        engine = record.engine
        process: WorkerProcess | None = None
        acquired = False
        scope = anyio.CancelScope()
        record.cancel_scope = scope
        try:
            with scope:
                resume = request.resume
                if resume is not None:
                    record.key = thread_key(engine, resume.value)
                    await self._registry.acquire(record.key, record.run_id)
                peer = await self._engines.acquire(engine, record.run_id, self._engine_wait())
                if peer is None:
                    return "error", self._engines.issue(engine)
                acquired = True
                record.state = "running"
                process = self._engines.process(engine)
                await self._relay(drive, peer, request, scope)
                if drive.completed is not None:
                    return None
        except PeerGone as exc:
            if drive.completed is not None:
                return None
            return "error", f"{engine} worker died ({await _death_cause(process, exc)})"
        except Exception as exc:
            if drive.completed is not None:
                return None
            log.exception("run.driver_failed", run_id=record.run_id)
            return "error", f"{engine} run failed: {type(exc).__name__}: {exc}"
        finally:
            if acquired:
                self._engines.release(engine, record.run_id)
        if drive.completed is not None:
            return None
        if scope.cancel_called:
            error = _CANCEL_ERRORS.get(record.cancel_reason or "")
            if error is not None:
                return "cancelled", error
            # The consumer asked for it and renders "cancelled" itself.
            self._journal.outcome(
                record.run_id, status="cancelled", resume_line=record.resume_line, pending=False
            )
            return None
        return "error", f"{engine} finished without a completed event"

    async def _relay(
        self, drive: _Drive, peer: Peer, request: EngineRun, scope: anyio.CancelScope
    ) -> None:
        """Stream the engine's batches to the consumer; decode only those the supervisor
        must see."""
        record = drive.record
        send_nowait = drive.send.send_nowait
        async with peer.stream_raw("run", request, window=ENGINE_WINDOW) as batches:
            async for batch in batches:
                if drive.completed is not None:
                    continue  # nothing may follow completed; drain to the end
                if record.consumer_attached and not _observed(batch):
                    # Hot path (progress events): relayed still encoded, verbatim.
                    record.events += batch.count
                    try:
                        send_nowait(batch)
                        continue
                    except anyio.WouldBlock:
                        await drive.forward(batch)
                        continue
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        record.consumer_attached = False
                        continue
                for event in batch.items():
                    if drive.completed is not None:
                        break
                    record.events += 1
                    await self._on_event(drive, event)
                    if isinstance(event, CompletedEvent):
                        # The consumer is done; the thread key stays held until the
                        # engine's process has exited (bounded).
                        await drive.close_consumer()
                        scope.deadline = anyio.current_time() + DRAIN_TIMEOUT

    async def _on_event(self, drive: _Drive, event: TakopiEvent) -> None:
        record = drive.record
        journal = self._journal
        if isinstance(event, StartedEvent):
            token = event.resume
            drive.token = token
            key = thread_key(record.engine, token.value)
            if record.key is None:
                record.key = key
                await self._registry.acquire(key, record.run_id)
            line = await self._format(token)
            record.resume_line = line or record.resume_line
            journal.started(record.run_id, resume=token.value, resume_line=record.resume_line)
            if line is not None:
                await drive.forward(ResumeLine(token=token.value, line=line))
            await drive.forward(event)
            return
        if isinstance(event, CompletedEvent):
            drive.completed = event
            drive.answer = event.answer
            if event.resume is not None and drive.token is None:
                drive.token = event.resume
                record.resume_line = await self._format(event.resume) or record.resume_line
            journal.outcome(
                record.run_id,
                status="done" if event.ok and event.answer.strip() else "error",
                answer=event.answer,
                error=event.error,
                resume_line=record.resume_line,
                pending=True,
            )
            await drive.forward(event)
            return
        await drive.forward(event)


async def _death_cause(process: WorkerProcess | None, exc: PeerGone) -> str:
    """How the engine worker ended (exit code / signal), else why its connection was lost."""
    if process is not None:
        # The endpoint may notice the loss a moment before our pidfd watcher reaps it.
        with anyio.move_on_after(2):
            await process.exited.wait()
        if process.exit is not None:
            return process.exit.describe()
    return exc.message or "connection lost"


__all__ = [
    "OPERATOR_REASON",
    "RESTART_ERROR",
    "RESTART_REASON",
    "SHUTDOWN_ERROR",
    "SHUTDOWN_REASON",
    "RunService",
]
