"""One worker's lifecycle: spawn an incarnation, bring it up, watch it, apply the policy.

A :class:`Watcher` outlives its worker's incarnations. Its :class:`WorkerState` is only ever
moved forward by the watcher itself, each transition tied to the incarnation it concerns:

``not-started → starting`` (a new incarnation exists, before its process does, so a handshake
that beats the fork server's answer still belongs to it) ``→ ready`` (loaded; only if it is
still the current incarnation) ``→ unresponsive`` (missed a ping; it is killed) ``→ exited``
(its process ended) ``→ backoff → starting …`` or ``→ quarantined | disabled`` (the policy gave
up) or ``→ stopped`` (shutdown). An engine worker nobody used for a while is ``→ retired``: its
process is stopped without the policy counting it, and the next :meth:`Watcher.start` (a run
needs it) brings up a new incarnation.

What differs per worker kind (how to load it, what to serve it, what its readiness or death
means for the rest) is a :class:`~takopi.supervisor.kinds.WorkerKind`; where processes come
from is the :class:`~takopi.supervisor.spawner.Spawner`.
"""

from __future__ import annotations

import functools
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from takopi.logging import get_logger
from takopi.rpc import PeerGone, new_identity
from takopi.supervisor.policy import Decision, WorkerPolicy
from takopi.supervisor.process import ExitInfo, WorkerProcess

if TYPE_CHECKING:
    from takopi.protocol import EngineLoaded, Hello
    from takopi.rpc import Peer
    from takopi.supervisor.options import SupervisorOptions

log = get_logger(__name__)


class WorkerState(StrEnum):
    """Where a worker is in its lifecycle (``takopictl status`` shows the value)."""

    NOT_STARTED = "not-started"
    """Created, never started (engine workers start on first use)."""
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    UNRESPONSIVE = "unresponsive"
    EXITED = "exited"
    BACKOFF = "backoff"
    QUARANTINED = "quarantined"
    DISABLED = "disabled"
    RETIRED = "retired"
    """Stopped after an idle period; starts again when needed."""

    @property
    def idle(self) -> bool:
        """Not running by design (never started, or retired): not a failure."""
        return self in (WorkerState.NOT_STARTED, WorkerState.RETIRED)

    @property
    def gave_up(self) -> bool:
        """The policy stopped restarting it (an operator restart clears this)."""
        return self in (WorkerState.QUARANTINED, WorkerState.DISABLED)

    @property
    def settled(self) -> bool:
        """Ready, or known not to become ready."""
        return self is WorkerState.READY or self.gave_up


class WatcherHost(Protocol):
    """What a watcher needs from the supervisor that owns it."""

    options: SupervisorOptions
    state: str
    stop_requested: anyio.Event
    config_loaded: anyio.Event

    def spawn_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None: ...

    def after_worker_exit(self) -> None: ...

    def maybe_notify_ready(self) -> None: ...


class ProcessSource(Protocol):
    """Where incarnations' processes come from (the spawner)."""

    async def spawn(self, watcher: Watcher, incarnation: Incarnation) -> WorkerProcess: ...


class IdentityBook(Protocol):
    """Who may say HELLO (the handshake)."""

    def expect(self, watcher: Watcher, incarnation: Incarnation) -> None: ...

    def forget(self, identity: bytes) -> None: ...


class WorkerKind(Protocol):
    """Per-kind behaviour of a worker."""

    name: str
    """``engine``, ``transport`` or ``command``."""
    stop_timeout: float
    """Seconds between SIGTERM and SIGKILL when the worker is stopped."""
    inherit_stdio: bool
    """The worker gets the supervisor's stdin/stdout (a transport on the terminal)."""

    def register(self, watcher: Watcher, peer: Peer) -> None:
        """Serve the supervisor's methods to this worker (called before bring-up)."""
        ...

    async def before_load(self, watcher: Watcher) -> None:
        """Wait for what the supervisor must settle first (not bounded by the load timeout)."""
        ...

    async def load(self, watcher: Watcher, peer: Peer) -> bool:
        """Load the plugin and do what readiness takes; False (after
        :meth:`Watcher.fail_load`) if the worker cannot serve."""
        ...

    async def on_ready(self, watcher: Watcher) -> None:
        """The worker became ready."""
        ...

    async def on_gave_up(self, watcher: Watcher, reason: str) -> None:
        """The policy stopped restarting the worker (quarantined or disabled)."""
        ...

    def on_exit(self, watcher: Watcher, incarnation: Incarnation) -> None:
        """An incarnation's process ended (its watcher already recorded how)."""
        ...


@dataclass(eq=False)
class Incarnation:
    """One process of a worker, from its spawn to its exit."""

    number: int
    identity: bytes
    secret: str | None
    """The one-time secret of this spawn (cleared once the handshake used it)."""
    process: WorkerProcess | None = None
    peer: Peer | None = None
    hello: Hello | None = None
    """What the worker said about itself (its pid even before the spawn reported it)."""
    ready_at: float | None = None
    spawned: anyio.Event = field(default_factory=anyio.Event)
    """Set once ``process`` is known (the handshake may come first)."""

    async def wait_process(self, timeout: float) -> WorkerProcess | None:
        """The process, waiting (bounded) for the spawn to report it."""
        with anyio.move_on_after(timeout):
            await self.spawned.wait()
        return self.process


class Watcher:
    """Keeps one worker (``kind:id``) running per policy until stop, quarantine or disable."""

    def __init__(
        self,
        kind: WorkerKind,
        plugin_id: str,
        *,
        python: str | None,
        policy: WorkerPolicy,
        host: WatcherHost,
        processes: ProcessSource,
        identities: IdentityBook,
    ) -> None:
        self.behaviour = kind
        self.kind: str = kind.name
        self.plugin_id = plugin_id
        self.python = python
        self.policy = policy
        self._host = host
        self._processes = processes
        self._identities = identities
        self._state = WorkerState.NOT_STARTED
        self.incarnation: Incarnation | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.last_error: str | None = None
        self.hello: Hello | None = None
        self.engine: EngineLoaded | None = None
        """What an engine worker reported at load (kept across incarnations)."""
        self.description = ""
        self.changed = anyio.Event()
        """Set (and replaced) on every change: waiters re-read what they wait for."""
        self.settled = anyio.Event()
        """Set once the worker reached ready, quarantine or disable (startup readiness)."""
        self.manual_restart = False
        self.running = False
        """The lifecycle task is alive (restarting counts)."""
        self.draining = False
        """An operator restart is waiting for this engine's runs: new runs queue meanwhile."""
        self.active_runs: set[str] = set()
        """Ids of the runs streaming from this engine's worker right now."""
        self.last_used = time.monotonic()
        """When a run last started or ended on this worker (or it became ready)."""
        self._retiring: Incarnation | None = None
        """The incarnation being stopped for idleness."""
        self._wanted = False
        """A start was asked for while an incarnation was being retired."""

    # ------------------------------------------------------------------ state

    @property
    def name(self) -> str:
        """``engine:codex``, ``transport:telegram``, ``command:run``."""
        return f"{self.kind}:{self.plugin_id}"

    @property
    def state(self) -> WorkerState:
        """The current :class:`WorkerState`."""
        return self._state

    def _set_state(self, state: WorkerState) -> None:
        self._state = state
        self.notify()

    def notify(self) -> None:
        """Wake everyone waiting for this worker to change."""
        event, self.changed = self.changed, anyio.Event()
        event.set()

    async def wait_changed(self) -> None:
        """Wait for the next change (of anything)."""
        changed = self.changed
        await changed.wait()

    @property
    def process(self) -> WorkerProcess | None:
        """The current incarnation's process."""
        return self.incarnation.process if self.incarnation is not None else None

    @property
    def peer(self) -> Peer | None:
        """The current incarnation's connection (None once it is gone)."""
        return self.incarnation.peer if self.incarnation is not None else None

    @property
    def ready_peer(self) -> Peer | None:
        """The connection of a ready worker, or None."""
        peer = self.peer
        if self._state is not WorkerState.READY or peer is None or peer.closed:
            return None
        return peer

    @property
    def ready_at(self) -> float | None:
        """When the current incarnation became ready."""
        return self.incarnation.ready_at if self.incarnation is not None else None

    def issue(self) -> str:
        """Why the worker is not ready (its last error, or its state)."""
        return self.last_error or self.policy.last_error or self._state.value

    def pid(self) -> int | None:
        """The live worker's pid: its process's, or the one its HELLO gave while the spawn
        has not reported the process yet."""
        inc = self.incarnation
        if inc is None:
            return None
        proc = inc.process
        if proc is not None:
            return proc.pid if proc.exit is None else None
        return inc.hello.pid if inc.hello is not None else None

    def describe(self) -> dict[str, Any]:
        """JSON-friendly status row."""
        inc = self.incarnation
        ready_at = self.ready_at
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.plugin_id,
            "state": self._state.value,
            "pid": self.pid(),
            "python": self.hello.python if self.hello is not None else None,
            "python_executable": self.python or sys.executable,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_error": self.last_error or self.policy.last_error,
            "uptime_s": round(time.monotonic() - ready_at, 3) if ready_at else None,
            "identity": inc.identity.decode() if inc is not None else None,
            "status": self.engine.status if self.engine is not None else None,
            "issue": self.engine.issue if self.engine is not None else None,
        }

    # ------------------------------------------------------------------ lifecycle

    def rekey(self, inc: Incarnation) -> None:
        """Give ``inc`` a new identity and secret (its old ones may still be in use)."""
        self._identities.forget(inc.identity)
        inc.identity = new_identity(self.kind, self.plugin_id)
        inc.secret = secrets.token_urlsafe(32)
        self._identities.expect(self, inc)

    def _new_incarnation(self) -> Incarnation:
        number = self.incarnation.number + 1 if self.incarnation is not None else 1
        inc = Incarnation(
            number=number,
            identity=new_identity(self.kind, self.plugin_id),
            secret=secrets.token_urlsafe(32),
        )
        self.incarnation = inc
        self.description = ""
        self._identities.expect(self, inc)
        self.policy.on_spawn()
        self._set_state(WorkerState.STARTING)
        return inc

    async def run(self) -> None:
        """The lifecycle loop (one task per watcher; a second call returns at once)."""
        if self.running:
            return
        self.running = True
        host = self._host
        try:
            while host.state != "stopping" and not host.stop_requested.is_set():
                inc = self._new_incarnation()
                try:
                    proc = await self._processes.spawn(self, inc)
                except Exception as exc:
                    self._identities.forget(inc.identity)
                    self.last_error = f"cannot start worker: {exc}"
                    log.error("worker.spawn_failed", worker=self.name, error=str(exc))
                    self.policy.quarantined = True
                    self._set_state(WorkerState.QUARANTINED)
                    break
                inc.process = proc
                inc.spawned.set()
                log.info(
                    "worker.spawned",
                    worker=self.name,
                    pid=proc.pid,
                    python=self.python or sys.executable,
                )
                exit_info = await proc.watch(functools.partial(self._on_exit, inc))
                self._identities.forget(inc.identity)
                if host.state == "stopping" or host.stop_requested.is_set():
                    self._set_state(WorkerState.STOPPED)
                    break
                if self._retiring is inc:
                    self._retiring = None
                    if not self._wanted:
                        self._set_state(WorkerState.RETIRED)
                        break
                    self._wanted = False  # a run needs it again: no policy, no restart count
                    continue
                if self.manual_restart:
                    self.manual_restart = False
                    self.restarts += 1
                    continue
                if not await self._after_exit(inc, proc, exit_info):
                    break
        finally:
            self.running = False

    async def _after_exit(self, inc: Incarnation, proc: WorkerProcess, exit_info: ExitInfo) -> bool:
        """Apply the policy to an exit; True to start the next incarnation."""
        was_ready = inc.ready_at is not None
        error = self.last_error or (None if was_ready else _tail_error(proc))
        decision = self.policy.on_exit(
            exit_code=exit_info.returncode, was_ready=was_ready, error=error
        )
        log.warning(
            "worker.exited",
            worker=self.name,
            exit=exit_info.describe(),
            action=decision.action,
            delay=round(decision.delay, 3),
        )
        if decision.action == "restart":
            self._set_state(WorkerState.BACKOFF)
            self.restarts += 1
            if decision.delay > 0:
                with anyio.move_on_after(decision.delay):
                    await self._host.stop_requested.wait()
            return True
        await self._give_up(decision)
        return False

    async def _give_up(self, decision: Decision) -> None:
        self.last_error = decision.reason
        gave_up = (
            WorkerState.QUARANTINED if decision.action == "quarantine" else WorkerState.DISABLED
        )
        self._set_state(gave_up)
        self.settled.set()
        log.error("worker.gave_up", worker=self.name, state=gave_up.value, reason=decision.reason)
        await self.behaviour.on_gave_up(self, decision.reason)
        self._host.maybe_notify_ready()

    def _on_exit(self, inc: Incarnation, proc: WorkerProcess) -> None:
        """The incarnation's process ended (called by :meth:`WorkerProcess.watch`)."""
        assert proc.exit is not None
        self.last_exit = proc.exit.describe()
        if self._state not in (WorkerState.STOPPED, WorkerState.RETIRED):
            stopping = self._host.state == "stopping"
            self._set_state(WorkerState.STOPPED if stopping else WorkerState.EXITED)
        proc.kill_leftovers()
        self._host.after_worker_exit()
        peer, inc.peer = inc.peer, None
        if peer is not None:
            try:
                peer.close(PeerGone(f"{self.name} worker {self.last_exit}"))
            except Exception as exc:  # pragma: no cover - defensive
                log.debug("rpc.close_failed", error=str(exc))
        self.notify()
        self.behaviour.on_exit(self, inc)

    # ------------------------------------------------------------------ bring-up

    def attach(self, inc: Incarnation, peer: Peer) -> None:
        """The incarnation said HELLO and was accepted: serve it, then bring it up."""
        inc.peer = peer
        attached = anyio.Event()
        # The worker says when its handlers are registered; nothing is sent to it before
        # (a request racing the WELCOME could otherwise arrive before the worker's Peer).
        peer.register("worker.attached", attached.set)
        self.behaviour.register(self, peer)
        self._host.spawn_task(self._bring_up, inc, peer, attached)

    async def _bring_up(self, inc: Incarnation, peer: Peer, attached: anyio.Event) -> None:
        host = self._host
        try:
            with anyio.fail_after(host.options.load_timeout):
                await attached.wait()
                await host.config_loaded.wait()
            await self.behaviour.before_load(self)
            with anyio.fail_after(host.options.load_timeout):
                ok = await self.behaviour.load(self, peer)
        except TimeoutError:
            self.last_error = "worker did not finish loading in time"
            ok = False
        except Exception as exc:
            proc = inc.process
            if (proc is None or proc.exit is None) and host.state != "stopping":
                log.error("supervisor.bring_up_failed", worker=self.name, error=str(exc))
                self.last_error = f"{type(exc).__name__}: {exc}"
            ok = False
        if not ok:
            await self._discard(inc)
            return
        if self.incarnation is not inc or peer.closed:
            return
        inc.ready_at = self.last_used = time.monotonic()
        self.policy.on_ready()
        self.last_error = None
        self._set_state(WorkerState.READY)
        self.settled.set()
        log.info("worker.ready", worker=self.name, pid=inc.process.pid if inc.process else None)
        host.spawn_task(self._pinger, inc, peer)
        await self.behaviour.on_ready(self)
        host.maybe_notify_ready()

    async def _discard(self, inc: Incarnation) -> None:
        """A failed load makes the worker exit with its code; make sure it does."""
        proc = await inc.wait_process(self._host.options.load_timeout)
        if proc is None or proc.exit is not None:
            return
        with anyio.move_on_after(2):
            await proc.exited.wait()
        if proc.exit is None:
            proc.kill()

    def fail_load(self, error: str) -> bool:
        """Record why a load failed (for :meth:`WorkerKind.load`); returns False."""
        self.last_error = error or "load failed"
        self.policy.last_error = self.last_error
        log.error("worker.failed", worker=self.name, error=self.last_error)
        return False

    async def _pinger(self, inc: Incarnation, peer: Peer) -> None:
        """Event-loop liveness: a worker that does not answer in time is killed."""
        host = self._host
        interval = host.options.ping_interval
        while host.state != "stopping" and inc.peer is peer and not peer.closed:
            await anyio.sleep(interval)
            if inc.peer is not peer or peer.closed or host.state == "stopping":
                return
            try:
                await peer.ping(timeout=host.options.ping_timeout)
            except Exception as exc:
                if inc.peer is not peer or peer.closed:
                    return
                self.last_error = (
                    f"unresponsive: no ping answer within {host.options.ping_timeout:g}s"
                )
                self._set_state(WorkerState.UNRESPONSIVE)
                log.error("worker.unresponsive", worker=self.name, error=str(exc))
                proc = await inc.wait_process(host.options.load_timeout)
                if proc is not None:
                    proc.kill()
                return

    # ------------------------------------------------------------------ operator actions

    def start(self) -> None:
        """Start the lifecycle task (no-op if it runs; one being retired comes back)."""
        if self._retiring is not None:
            self._wanted = True
        elif not self.running:
            self._host.spawn_task(self.run)

    def retire(self) -> bool:
        """Stop an idle ready worker (no runs, no operator restart going on); False if it is
        not idle. The policy does not count it; :meth:`start` brings it back."""
        inc, proc = self.incarnation, self.process
        if (
            self._state is not WorkerState.READY
            or self.active_runs
            or self.draining
            or inc is None
            or proc is None
        ):
            return False
        self._retiring = inc
        self._wanted = False
        self._set_state(WorkerState.RETIRED)
        log.info("worker.retired", worker=self.name, pid=proc.pid)
        self._host.spawn_task(proc.stop, self.behaviour.stop_timeout)
        return True

    def restart(self, *, force: bool) -> bool:
        """Restart now: a running worker is stopped (``force``: killed) and comes back; one
        the policy gave up on starts over (``force`` also clears EX_CONFIG). False if a
        disabled worker was left alone."""
        if self._retiring is not None:
            self.start()  # being retired: it comes back once stopped
            return True
        if self._state.idle and not self.running:
            return False  # nothing runs: it starts when needed
        if self._state.gave_up or not self.running:
            if self._state is WorkerState.DISABLED and not force:
                return False
            self.policy.reset()
            self.settled = anyio.Event()
            self.last_error = None
            self.start()
            return True
        self.manual_restart = True
        proc = self.process
        if proc is not None:
            if force:
                proc.kill()
            else:
                self._host.spawn_task(proc.stop, self.behaviour.stop_timeout)
        return True

    async def stop(self) -> None:
        """Stop the process (SIGTERM, grace, SIGKILL) at shutdown."""
        proc = self.process
        if proc is not None and proc.exit is None:
            await proc.stop(self.behaviour.stop_timeout)

    def mark_stopped(self) -> None:
        """After shutdown: stopped, unless the policy gave up on it or it was not running."""
        if not self._state.gave_up and not self._state.idle:
            self._set_state(WorkerState.STOPPED)


def _tail_error(proc: WorkerProcess) -> str | None:
    """The last meaningful output line of a worker that died before it was ready."""
    for line in reversed(proc.tail(50)):
        text = line.strip()
        if text:
            return text[-500:]
    return None


__all__ = ["Incarnation", "Watcher", "WatcherHost", "WorkerKind", "WorkerState"]
