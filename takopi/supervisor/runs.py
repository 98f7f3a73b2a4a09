"""Driving runs: transport worker → supervisor run registry → engine worker, and back.

The transport worker opens stream ``run(StartRun)``. A *driver* task, owned by the supervisor (not by that stream), pulls the
engine worker's events and hands them to the stream through a bounded channel, so:

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
``started`` so the transport side can format the resume line without a round trip. The engine's event
batches are relayed still encoded (:class:`~takopi.rpc.peer.RawBatch`); only a batch that may
hold ``started``/``completed`` (a byte search for their wire tags) is decoded here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import anyio

from takopi.logging import get_logger
from takopi.model import CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.protocol import EngineRun, ResumeLine, StartRun
from takopi.rpc.peer import RawBatch
from takopi.supervisor.registry import RunRecord, thread_key

if TYPE_CHECKING:
    from takopi.supervisor.arbiter import Arbiter

log = get_logger(__name__)

SHUTDOWN_REASON = "shutdown"
DRAIN_TIMEOUT = 10.0
OPERATOR_REASON = "operator"
OPERATOR_ERROR = "cancelled by the operator (takopictl cancel)"
RESTART_REASON = "restart"
RESTART_ERROR = "cancelled: the engine was restarted by the operator (takopictl restart --force)"
SHUTDOWN_ERROR = "cancelled: takopi is shutting down"

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


def _observed(batch: RawBatch) -> bool:
    """Whether ``batch`` may hold an event the supervisor must decode (false positives ok)."""
    return any(batch.contains(tag) for tag in _OBSERVED_TAGS)


class RunService:
    """Serves ``run`` / ``run.cancel`` / ``run.ack`` to transport workers."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.resume_lines: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.drivers = 0
        self.idle = anyio.Event()
        self.idle.set()

    def register(self, peer: Any, *, transport: str) -> None:
        """Install the run methods on a transport worker's peer."""

        def run(request: StartRun) -> AsyncIterator[Any]:
            return self.run_stream(request, transport=transport)

        peer.register_stream("run", run)
        peer.register("run.cancel", self.cancel)
        peer.register("run.ack", self.ack)

    def remember_line(self, token: ResumeToken, line: str) -> None:
        """Cache a formatted resume line."""
        key = (token.engine, token.value)
        self.resume_lines[key] = line
        self.resume_lines.move_to_end(key)
        while len(self.resume_lines) > 4096:
            self.resume_lines.popitem(last=False)

    async def cancel(self, run_id: str) -> bool:
        """Explicit cancel from the consumer (user /cancel)."""
        return self.arbiter.registry.cancel(str(run_id), "cancelled")

    def ack(self, run_id: str) -> bool:
        """The consumer received the terminal event (or a transport delivered a journaled one)."""
        return self.arbiter.journal.delivered(str(run_id))

    async def _format(self, token: ResumeToken) -> str | None:
        cached = self.resume_lines.get((token.engine, token.value))
        if cached is not None:
            return cached
        peer = self.arbiter.engine_peer(token.engine)
        if peer is None:
            return None
        try:
            line = str(await peer.call("format_resume", token, timeout=10))
        except Exception as exc:
            log.warning("run.format_resume_failed", engine=token.engine, error=str(exc))
            return None
        self.remember_line(token, line)
        return line

    async def run_stream(self, request: StartRun, *, transport: str) -> AsyncIterator[Any]:
        """The stream a transport worker consumes for one run."""
        engine, resume = request.engine, request.resume
        origin = asdict(request.address) if request.address is not None else {}
        registry = self.arbiter.registry
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
        self.arbiter.journal.begin(
            record.run_id,
            transport=transport,
            engine=engine,
            origin=dict(origin),
            resume_line=resume_line,
        )
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
        self.arbiter.spawn_task(self._drive, record, send, engine_run)
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

    async def _drive(self, record: RunRecord, send: Any, request: EngineRun) -> None:
        engine = record.engine
        state: dict[str, Any] = {"token": request.resume, "completed": None, "answer": ""}

        async def forward(item: Any) -> None:
            if not record.consumer_attached:
                return
            try:
                try:
                    send.send_nowait(item)
                except anyio.WouldBlock:
                    await send.send(item)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                record.consumer_attached = False
                log.info("run.detached", run_id=record.run_id, engine=engine)

        try:

            async def close_consumer() -> None:
                with anyio.CancelScope(shield=True):
                    await send.aclose()

            status, error = await self._drive_engine(
                record,
                forward,
                close_consumer,
                send.send_nowait,
                state,
                request,
            )
            if status is not None:
                # Synthesized terminal event: engine death, shutdown, unavailable engine.
                if state["token"] is not None and error:
                    error += "; reply to resume the session"
                self.arbiter.journal.outcome(
                    record.run_id,
                    status=status,
                    answer=state["answer"],
                    error=error,
                    resume_line=record.resume_line,
                    pending=True,
                )
                terminal = CompletedEvent(
                    engine=engine,
                    ok=False,
                    answer=state["answer"],
                    resume=state["token"],
                    error=error,
                )
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await forward(terminal)
        finally:
            self.arbiter.registry.finish(record.run_id)
            with anyio.CancelScope(shield=True):
                await send.aclose()
            self.drivers -= 1
            if self.drivers == 0:
                self.idle.set()

    async def _drive_engine(
        self,
        record: RunRecord,
        forward: Any,
        close_consumer: Any,
        send_nowait: Any,
        state: dict[str, Any],
        request: EngineRun,
    ) -> tuple[Any, str | None]:
        """Run against the engine worker; returns ``(status, error)`` of a synthesized end,
        or ``(None, None)`` when the run ended by itself or by the consumer's cancel."""
        from takopi.rpc import PeerGone

        engine = record.engine
        process = None
        acquired = False
        scope = anyio.CancelScope()
        record.cancel_scope = scope
        try:
            with scope:
                resume = request.resume
                if resume is not None:
                    record.key = thread_key(engine, resume.value)
                    await self.arbiter.registry.acquire(record.key, record.run_id)
                peer = await self.arbiter.acquire_engine(
                    engine, record.run_id, self.arbiter.options.engine_wait
                )
                if peer is None:
                    return "error", self.arbiter.engine_issue(engine)
                acquired = True
                record.state = "running"
                process = self.arbiter.engine_process(engine)
                async with peer.stream_raw("run", request, window=ENGINE_WINDOW) as batches:
                    async for batch in batches:
                        if state["completed"] is not None:
                            continue  # nothing may follow completed; drain to the end
                        if record.consumer_attached and not _observed(batch):
                            # Hot path (progress events): relayed still encoded, verbatim.
                            record.events += batch.count
                            try:
                                send_nowait(batch)
                                continue
                            except anyio.WouldBlock:
                                await forward(batch)
                                continue
                            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                                record.consumer_attached = False
                                continue
                        for event in batch.items():
                            if state["completed"] is not None:
                                break
                            record.events += 1
                            await self._on_event(record, event, state, forward)
                            if isinstance(event, CompletedEvent):
                                # The consumer is done; the thread key stays held until the
                                # engine's process has exited (bounded).
                                await close_consumer()
                                scope.deadline = anyio.current_time() + DRAIN_TIMEOUT
                if state["completed"] is not None:
                    return None, None
        except PeerGone as exc:
            if state["completed"] is not None:
                return None, None
            cause = None
            if process is not None:
                # The endpoint may notice the loss a moment before our pidfd watcher reaps it.
                with anyio.move_on_after(2):
                    await process.exited.wait()
                cause = process.exit.describe() if process.exit is not None else None
            cause = cause or exc.message or "connection lost"
            return "error", f"{engine} worker died ({cause})"
        except Exception as exc:
            if state["completed"] is not None:
                return None, None
            log.exception("run.driver_failed", run_id=record.run_id)
            return "error", f"{engine} run failed: {type(exc).__name__}: {exc}"
        finally:
            if acquired:
                self.arbiter.release_engine(engine, record.run_id)
        if state["completed"] is not None:
            return None, None
        if scope.cancel_called:
            if record.cancel_reason == SHUTDOWN_REASON:
                return "cancelled", SHUTDOWN_ERROR
            if record.cancel_reason == OPERATOR_REASON:
                return "cancelled", OPERATOR_ERROR
            if record.cancel_reason == RESTART_REASON:
                return "cancelled", RESTART_ERROR
            # The consumer asked for it and renders "cancelled" itself.
            self.arbiter.journal.outcome(
                record.run_id, status="cancelled", resume_line=record.resume_line, pending=False
            )
            return None, None
        return "error", f"{engine} finished without a completed event"

    async def _on_event(
        self, record: RunRecord, event: TakopiEvent, state: dict[str, Any], forward: Any
    ) -> None:
        journal = self.arbiter.journal
        if isinstance(event, StartedEvent):
            token = event.resume
            state["token"] = token
            key = thread_key(record.engine, token.value)
            if record.key is None:
                record.key = key
                await self.arbiter.registry.acquire(key, record.run_id)
            line = await self._format(token)
            record.resume_line = line or record.resume_line
            journal.started(record.run_id, resume=token.value, resume_line=record.resume_line)
            if line is not None:
                await forward(ResumeLine(token=token.value, line=line))
            await forward(event)
            return
        if isinstance(event, CompletedEvent):
            state["completed"] = event
            state["answer"] = event.answer
            if event.resume is not None and state["token"] is None:
                state["token"] = event.resume
                record.resume_line = await self._format(event.resume) or record.resume_line
            journal.outcome(
                record.run_id,
                status="done" if event.ok and event.answer.strip() else "error",
                answer=event.answer,
                error=event.error,
                resume_line=record.resume_line,
                pending=True,
            )
            await forward(event)
            return
        await forward(event)


__all__ = [
    "OPERATOR_REASON",
    "RESTART_ERROR",
    "RESTART_REASON",
    "SHUTDOWN_ERROR",
    "SHUTDOWN_REASON",
    "RunService",
]
