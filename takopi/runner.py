"""Runner protocol and the base classes engine plugins build on.

- :class:`Runner` — what the bridge needs from an engine.
- :class:`ResumeTokenMixin` — resume-line codec driven by a ``resume_re`` regex.
- :class:`SessionLockMixin` / :class:`BaseRunner` — one run at a time per session.
- :class:`JsonlSubprocessRunner` — runs a CLI that prints JSON lines and translates them
  through overridable hooks (the hook names and keywords are part of the plugin API).

Bases are plain (non-slotted) classes with class-level defaults so that plugins can subclass
them with ``@dataclass(slots=True)`` and still assign attributes such as ``session_locks``.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable
from weakref import WeakValueDictionary

import anyio
from anyio.abc import Process

from takopi.logging import get_logger, pipeline_level
from takopi.model import (
    Action,
    ActionEvent,
    CompletedEvent,
    EngineId,
    ResumeToken,
    StartedEvent,
    TakopiEvent,
)
from takopi.utils.paths import get_run_base_dir
from takopi.utils.streams import drain_stderr, iter_bytes_lines
from takopi.utils.subprocess import (
    close_process_streams,
    spawn_process,
    terminate_process,
    which_error,
)

_log = get_logger(__name__)

#: After the CLI exits, how long stdout may stay open (held by a leftover grandchild) before
#: the process group is terminated so that the run can finish.
EXIT_LINGER_S = 2.0


@asynccontextmanager
async def _aclosing(iterator: AsyncIterator[Any]) -> AsyncIterator[AsyncIterator[Any]]:
    """Like :func:`contextlib.aclosing`, for any async iterator (closes generators now,
    in this task, instead of leaving them to the garbage collector's finaliser)."""
    try:
        yield iterator
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class _UndecodableLine(ValueError):
    """``decode_jsonl`` returned ``None``: treated like invalid JSON."""


@runtime_checkable
class Runner(Protocol):
    """An engine: runs prompts and owns its resume-line format."""

    engine: EngineId

    def is_resume_line(self, line: str) -> bool:
        """Whether ``line`` is one of this engine's resume lines (stripped from prompts)."""
        ...

    def format_resume(self, token: ResumeToken) -> str:
        """The resume line users can paste; raises for another engine's token."""
        ...

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The resume token in ``text`` (the last matching line wins), if any."""
        ...

    def run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """Run ``prompt`` (resuming ``resume`` if given): one ``started``, ``completed`` last."""
        ...


def _check_engine(engine: EngineId, token: ResumeToken) -> None:
    if token.engine != engine:
        raise RuntimeError(f"resume token is for engine {token.engine!r}, not {engine!r}")


class ResumeTokenMixin:
    """Resume codec from two class attributes: ``engine`` and ``resume_re``.

    ``resume_re`` must have a named group ``token``. The default line format is
    `` `<engine> resume <token>` ``; engines with another format override
    :meth:`format_resume`.
    """

    engine: EngineId
    resume_re: re.Pattern[str]

    def format_resume(self, token: ResumeToken) -> str:
        """`` `<engine> resume <token>` ``; raises ``RuntimeError`` for another engine."""
        _check_engine(self.engine, token)
        return f"`{self.engine} resume {token.value}`"

    def is_resume_line(self, line: str) -> bool:
        """Whether ``line`` matches ``resume_re``."""
        return bool(self.resume_re.match(line))

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The token of the last resume line in ``text``, or ``None``."""
        if not text:
            return None
        found: str | None = None
        for match in self.resume_re.finditer(text):
            token = match.group("token")
            if token:
                found = token
        if found is None:
            return None
        return ResumeToken(engine=self.engine, value=found)


def session_key(token: ResumeToken) -> str:
    """The per-thread key ``"<engine>:<token>"`` used by locks and the scheduler."""
    return f"{token.engine}:{token.value}"


class SessionLockMixin:
    """Per-session locks so that two runs never drive the same engine session at once.

    ``session_locks`` stays a class attribute (``None``) until first use; the first run creates
    an instance-level ``WeakValueDictionary`` of ``anyio.Semaphore(1)`` keyed by
    :func:`session_key`. A lock disappears once no run holds or waits for it.
    """

    engine: EngineId
    session_locks: WeakValueDictionary[str, anyio.Semaphore] | None = None

    def lock_for(self, token: ResumeToken) -> anyio.Semaphore:
        """The lock of ``token``'s session (created on demand)."""
        locks = self.session_locks
        if locks is None:
            locks = WeakValueDictionary()
            self.session_locks = locks
        key = session_key(token)
        lock = locks.get(key)
        if lock is None:
            lock = anyio.Semaphore(1)
            locks[key] = lock
        return lock

    async def run_with_resume_lock(
        self, prompt: str, resume: ResumeToken | None
    ) -> AsyncIterator[TakopiEvent]:
        """Run :meth:`run_impl` under the session lock.

        A resume run holds its session lock for the whole run. A new run takes the lock of the
        session it creates as soon as its ``started`` event names it — before that event is
        yielded — so a resume of the brand-new thread that races it waits for it to finish.
        """
        if resume is not None:
            lock = self.lock_for(resume)
            async with lock, _aclosing(self.run_impl(prompt, resume)) as events:
                async for event in events:
                    yield event
            return
        held: anyio.Semaphore | None = None
        try:
            async with _aclosing(self.run_impl(prompt, None)) as events:
                async for event in events:
                    if held is None and isinstance(event, StartedEvent):
                        held = self.lock_for(event.resume)
                        await held.acquire()
                    yield event
        finally:
            if held is not None:
                held.release()

    def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """The engine-specific run; subclasses implement it as an async generator."""
        raise NotImplementedError


class BaseRunner(SessionLockMixin):
    """A runner whose subclasses implement only ``run_impl(prompt, resume)``.

    :meth:`run` adds the session locking of :class:`SessionLockMixin`.
    """

    async def run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """Run ``prompt``; see :meth:`SessionLockMixin.run_with_resume_lock`."""
        async with _aclosing(self.run_with_resume_lock(prompt, resume)) as events:
            async for event in events:
                yield event


@dataclass(slots=True)
class JsonlRunState:
    """Per-run mutable state of a :class:`JsonlSubprocessRunner` (subclass it for more)."""

    note_seq: int = 0


class JsonlSubprocessRunner(BaseRunner):
    """Runs ``[command(), *build_args(...)]`` and translates its JSONL stdout into events.

    Subclasses set ``engine`` (and usually ``resume_re`` via :class:`ResumeTokenMixin`) and
    implement :meth:`command`, :meth:`build_args` and :meth:`translate`; every other hook has
    a default. The process runs in its own process group with cwd = the run base dir; it is
    terminated (SIGTERM to the group, 2 s grace, SIGKILL) when the run is cancelled, the
    consumer stops early, or an error escapes. stderr is only logged.
    """

    #: Shown after "<cmd> not found on PATH; install with: " when the CLI is missing.
    install_cmd: ClassVar[str | None] = None
    #: How many stderr lines to keep for the ``runner.completed`` log line.
    stderr_tail_lines: ClassVar[int] = 50

    # -- identity and logging -------------------------------------------------------------

    def tag(self) -> str:
        """Name used in notes and errors (default: the engine id)."""
        return str(self.engine)

    def get_logger(self) -> Any:
        """The structlog logger for this runner (a ``logger`` attribute wins if set)."""
        logger = getattr(self, "logger", None)
        return logger if logger is not None else _log

    def install_hint(self) -> str | None:
        """How to install the CLI (e.g. ``npm install -g ...``); ``None`` if unknown."""
        return self.install_cmd

    # -- process setup hooks --------------------------------------------------------------

    def command(self) -> str:
        """The executable (name on PATH or absolute path)."""
        raise NotImplementedError

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        """Arguments after :meth:`command`."""
        raise NotImplementedError

    def stdin_payload(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> bytes | None:
        """Bytes written to stdin before it is closed (default: the prompt, UTF-8).

        ``None`` closes stdin without writing.
        """
        return prompt.encode("utf-8")

    def env(self, *, state: Any) -> dict[str, str] | None:
        """The child environment (``None`` = inherit this process's environment)."""
        return None

    def new_state(self, prompt: str, resume: ResumeToken | None) -> Any:
        """Per-run state handed to every hook (default: :class:`JsonlRunState`)."""
        return JsonlRunState()

    def start_run(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> None:
        """Called once before the process starts."""
        return None

    # -- stream hooks ---------------------------------------------------------------------

    def decode_jsonl(self, *, line: bytes) -> Any:
        """Decode one non-blank stdout line (raises on invalid input)."""
        return json.loads(line)

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        """Events for one decoded line."""
        raise NotImplementedError

    def note_event(
        self,
        message: str,
        *,
        state: Any,
        ok: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> ActionEvent:
        """A completed ``note`` action with a per-run unique id (a warning unless ``ok``)."""
        seq = getattr(state, "note_seq", 0) + 1
        try:
            state.note_seq = seq
        except AttributeError:
            pass
        return ActionEvent(
            engine=self.engine,
            action=Action(
                id=f"{self.tag()}.note.{seq}",
                kind="note",
                title=message,
                detail=dict(detail or {}),
            ),
            phase="completed",
            ok=ok,
            message=message,
            level="info" if ok else "warning",
        )

    def invalid_json_events(self, *, raw: str, line: str, state: Any) -> list[TakopiEvent]:
        """Events for a line that is not JSON (default: a warning note)."""
        message = f"invalid JSON from {self.tag()}; ignoring line"
        return [self.note_event(message, state=state, detail={"line": line})]

    def decode_error_events(
        self, *, raw: str, line: str, error: Exception, state: Any
    ) -> list[TakopiEvent]:
        """Events for a line :meth:`decode_jsonl` rejected.

        JSON syntax errors become :meth:`invalid_json_events`; other errors (schema
        validation, …) are logged and the line dropped.
        """
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError | _UndecodableLine):
            return self.invalid_json_events(raw=raw, line=line, state=state)
        _log_safe(
            self.get_logger(),
            "warning",
            "jsonl.decode_error",
            tag=self.tag(),
            error=str(error),
            error_type=type(error).__name__,
        )
        return []

    def translate_error_events(
        self, *, data: Any, error: Exception, state: Any
    ) -> list[TakopiEvent]:
        """Events when :meth:`translate` raised (default: log + warning note)."""
        _log_safe(
            self.get_logger(),
            "warning",
            "jsonl.translate_error",
            tag=self.tag(),
            error=str(error),
            error_type=type(error).__name__,
        )
        message = f"{self.tag()} translation error; ignoring event"
        return [self.note_event(message, state=state, detail={"error": str(error)})]

    def process_error_events(
        self,
        rc: int,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """Events when the process exits non-zero without a ``completed`` event."""
        message = f"{self.tag()} failed (rc={rc})."
        return [
            self.note_event(message, state=state, detail={"rc": rc}),
            CompletedEvent(
                engine=self.engine,
                ok=False,
                answer="",
                resume=found_session or resume,
                error=message,
            ),
        ]

    def stream_end_events(
        self,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """Events when the process exits 0 without a ``completed`` event."""
        message = f"{self.tag()} finished without a completed event"
        return [
            CompletedEvent(
                engine=self.engine,
                ok=False,
                answer="",
                resume=found_session or resume,
                error=message,
            )
        ]

    # -- the run --------------------------------------------------------------------------

    def _spawn_error_message(self, argv0: str, error: OSError, cwd: Any) -> str:
        if isinstance(error, FileNotFoundError):
            message = which_error(argv0, cwd)
            hint = self.install_hint()
            if hint and message.endswith("not found on PATH"):
                message = f"{message}; install with: {hint}"
            return message
        if isinstance(error, PermissionError):
            return f"{argv0} is not executable: {error.strerror or error}"
        return f"failed to start {argv0}: {error}"

    async def run_impl(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        """Spawn the CLI, feed stdin, translate stdout, then handle the exit code."""
        log = self.get_logger()
        tag = self.tag()
        state = self.new_state(prompt, resume)
        self.start_run(prompt, resume, state=state)
        argv = [self.command(), *self.build_args(prompt, resume, state=state)]
        payload = self.stdin_payload(prompt, resume, state=state)
        env = self.env(state=state)
        cwd = get_run_base_dir()
        started_at = time.monotonic()
        _log_safe(
            log,
            "info",
            "subprocess.spawn",
            tag=tag,
            argv=argv,
            cwd=str(cwd) if cwd is not None else None,
        )
        try:
            proc = await spawn_process(argv, cwd=cwd, env=env, stdin=True)
        except OSError as exc:
            message = self._spawn_error_message(argv[0], exc, cwd)
            _log_safe(log, "error", "subprocess.spawn_failed", tag=tag, error=message)
            yield CompletedEvent(
                engine=self.engine, ok=False, answer="", resume=resume, error=message
            )
            return

        stderr_tail: deque[str] = deque(maxlen=self.stderr_tail_lines)
        stderr_task = _start_background(
            drain_stderr(proc.stderr, tag=tag, logger=log, tail=stderr_tail)  # type: ignore[arg-type]
        )
        stdin_task = _start_background(_feed_stdin(proc, payload))
        stdout_done = anyio.Event()
        reaper_task = _start_background(_reap_after_exit(proc, stdout_done, log=log, tag=tag))
        found_session: ResumeToken | None = None
        completed: CompletedEvent | None = None
        action_count = 0
        rc: int | None = None
        finished = False
        try:
            assert proc.stdout is not None
            async with _aclosing(iter_bytes_lines(proc.stdout)) as lines:
                async for raw_bytes in lines:
                    if completed is not None:
                        continue  # keep draining so the process can exit, drop the rest
                    line_bytes = raw_bytes.strip()
                    if not line_bytes:
                        continue
                    events = self._events_for_line(
                        raw_bytes,
                        line_bytes,
                        state=state,
                        resume=resume,
                        found_session=found_session,
                    )
                    for event in events:
                        out, found_session = self._accept(event, resume, found_session)
                        if out is None:
                            continue
                        if isinstance(out, ActionEvent):
                            action_count += 1
                        if isinstance(out, CompletedEvent):
                            completed = out
                            yield out
                            break
                        yield out
            stdout_done.set()
            rc = await proc.wait()
            finished = True
            if completed is None:
                if rc != 0:
                    tail_events = self.process_error_events(
                        rc, resume=resume, found_session=found_session, state=state
                    )
                else:
                    tail_events = self.stream_end_events(
                        resume=resume, found_session=found_session, state=state
                    )
                for event in tail_events:
                    out, found_session = self._accept(event, resume, found_session)
                    if out is None:
                        continue
                    if isinstance(out, CompletedEvent):
                        completed = out
                        yield out
                        break
                    yield out
                if completed is None:  # a hook forgot the terminal event: keep the contract
                    completed = CompletedEvent(
                        engine=self.engine,
                        ok=False,
                        answer="",
                        resume=found_session or resume,
                        error=f"{tag} finished without a completed event (rc={rc})",
                    )
                    yield completed
        finally:
            # Kill leftovers (the whole group) on cancel / early close / error, and also any
            # background processes the CLI left behind after a normal exit.
            await terminate_process(proc)
            stdin_task.cancel()
            reaper_task.cancel()
            await _settle(stderr_task, timeout=0.5)
            await close_process_streams(proc)
            _log_safe(
                log,
                "info",
                "runner.completed",
                tag=tag,
                ok=completed.ok if completed is not None else None,
                rc=proc.returncode if rc is None else rc,
                finished=finished,
                answer_len=len(completed.answer) if completed is not None else 0,
                action_count=action_count,
                elapsed=round(time.monotonic() - started_at, 3),
                resume=found_session.value if found_session is not None else None,
                stderr_tail=list(stderr_tail)[-5:]
                if completed is None or not completed.ok
                else None,
            )

    def _events_for_line(
        self,
        raw_bytes: bytes,
        line_bytes: bytes,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        try:
            data = self.decode_jsonl(line=line_bytes)
            if data is None:
                # As in the reference: a ``None`` decode goes straight to
                # invalid_json_events; plugins' decode_error_events only see real exceptions.
                raw = raw_bytes.decode("utf-8", errors="replace")
                line = line_bytes.decode("utf-8", errors="replace")
                return list(self.invalid_json_events(raw=raw, line=line, state=state))
        except Exception as exc:
            raw = raw_bytes.decode("utf-8", errors="replace")
            line = line_bytes.decode("utf-8", errors="replace")
            _log_safe(
                self.get_logger(),
                pipeline_level(),
                "jsonl.undecodable",
                tag=self.tag(),
                error=type(exc).__name__,
            )
            return list(self.decode_error_events(raw=raw, line=line, error=exc, state=state))
        try:
            return list(
                self.translate(data, state=state, resume=resume, found_session=found_session)
            )
        except Exception as exc:
            return list(self.translate_error_events(data=data, error=exc, state=state))

    def _accept(
        self,
        event: TakopiEvent,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> tuple[TakopiEvent | None, ResumeToken | None]:
        """Enforce the one-session rule: returns (event to yield or None, found_session)."""
        if isinstance(event, StartedEvent):
            if resume is not None and event.resume != resume:
                raise RuntimeError(
                    f"{self.tag()} started session {event.resume.value!r} "
                    f"but {resume.value!r} was requested"
                )
            if found_session is not None:
                if event.resume != found_session:
                    raise RuntimeError(
                        f"{self.tag()} reported a second session {event.resume.value!r} "
                        f"after {found_session.value!r}"
                    )
                return None, found_session
            return event, event.resume
        return event, found_session


async def _feed_stdin(proc: Process, payload: bytes | None) -> None:
    stream = proc.stdin
    if stream is None:
        return
    try:
        if payload:
            await stream.send(payload)
    except Exception:
        pass  # the CLI may exit before reading its stdin
    finally:
        try:
            await stream.aclose()
        except Exception:
            pass


async def _reap_after_exit(proc: Process, stdout_done: anyio.Event, *, log: Any, tag: str) -> None:
    """Once the CLI has exited, make sure its stdout reaches EOF.

    A leftover grandchild can hold the stdout pipe open forever; after ``EXIT_LINGER_S`` the
    group is terminated, and if the pipe is still open (a process escaped the group) it is
    closed from our side so the run can end.
    """
    try:
        await proc.wait()
        with anyio.move_on_after(EXIT_LINGER_S):
            await stdout_done.wait()
            return
        _log_safe(log, "warning", "subprocess.stdout_held", tag=tag, pid=proc.pid)
        await terminate_process(proc)
        with anyio.move_on_after(1.0):
            await stdout_done.wait()
            return
        if proc.stdout is not None:
            await proc.stdout.aclose()
    except Exception as exc:
        _log_safe(log, "debug", "subprocess.reaper_failed", tag=tag, error=repr(exc))


async def _settle(task: Any, *, timeout: float) -> None:
    """Give a helper task ``timeout`` seconds to finish on its own, then cancel it."""
    import asyncio

    with anyio.CancelScope(shield=True):
        if not task.done():
            await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            task.cancel()


def _log_safe(log: Any, level: str, event: str, **fields: Any) -> None:
    """Log through a plugin-provided logger, falling back to ours if it is not structlog-like."""
    try:
        getattr(log, level)(event, **fields)
    except TypeError:
        getattr(_log, level)(event, **fields)


def _start_background(coro: Any) -> Any:
    """Run ``coro`` as a loop task that does not span the generator's yields.

    An async generator must not hold an anyio task group across ``yield`` (its finaliser may
    run in another task), so helpers that outlive a yield are plain asyncio tasks that the
    generator cancels in its ``finally``.
    """
    import asyncio

    return asyncio.get_running_loop().create_task(coro)


__all__ = [
    "BaseRunner",
    "JsonlRunState",
    "JsonlSubprocessRunner",
    "ResumeTokenMixin",
    "Runner",
    "SessionLockMixin",
    "session_key",
]
