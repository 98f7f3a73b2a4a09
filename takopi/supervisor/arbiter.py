"""The arbiter: owns the supervisor process as a whole.

It loads the config, binds the RPC endpoint and the control socket, spawns one worker per
engine plus the transport (command workers on first use), completes each worker's handshake and
load, holds the transport's lockfile, routes runs through the run registry, watches liveness
(pidfd exit + event-loop ping), restarts per :mod:`~takopi.supervisor.policy`, reports to systemd
and shuts down gracefully. ``run_supervisor(options) -> int`` is the CLI entry point.
"""

from __future__ import annotations

import hmac
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from takopi.config import CONFIG_PATH_ENV, ConfigError
from takopi.logging import get_logger
from takopi.protocol import (
    CommandDescription,
    CommandInvocation,
    CommandLoad,
    CommandLoaded,
    EngineDescription,
    EngineLoad,
    EngineLoaded,
    Hello,
    LoadFailed,
    ResumeCodecInfo,
    RuntimeSnapshot,
    SetupCheck,
    SetupReport,
    TransportLoad,
    TransportLoaded,
    TransportStart,
)
from takopi.supervisor.control import ControlServer
from takopi.supervisor.early import base_worker_env, discard_early
from takopi.supervisor.journal import Journal
from takopi.supervisor.logring import LogRing
from takopi.supervisor.notify import Notifier
from takopi.supervisor.paths import SupervisorPaths, resolve_paths
from takopi.supervisor.policy import PolicyConfig, WorkerPolicy
from takopi.supervisor.process import ExitInfo, WorkerProcess, worker_argv
from takopi.supervisor.reaper import Reaper, become_subreaper
from takopi.supervisor.registry import RunRegistry
from takopi.supervisor.runs import OPERATOR_REASON, RESTART_REASON, SHUTDOWN_REASON, RunService
from takopi.supervisor.runtime_service import EngineStandIn, RuntimeService
from takopi.supervisor.verbs import bind_verbs
from takopi.supervisor.zygote import Zygote

log = get_logger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_TRANSPORT_QUARANTINED = 3
WORKER_STOP_TIMEOUT = 3.0
TRANSPORT_STOP_TIMEOUT = 9.0
"""Above the transport worker's own bound (STOP_GRACE + LOOP_STOP_WAIT + 1 s)."""
FORCE_DRAIN_TIMEOUT = 10.0
"""``restart --force``: how long cancelled runs get to deliver their terminal reply."""


class RestartRefused(Exception):
    """A restart gave up waiting for runs in flight; nothing was restarted."""


@dataclass(slots=True)
class SupervisorOptions:
    """What the CLI passes to :func:`run_supervisor`."""

    config_path: Path | None = None
    transport_override: str | None = None
    default_engine_override: str | None = None
    final_notify: bool = True
    debug: bool = False
    engines: list[str] | None = None
    """Restrict the engine workers to these ids (default: every installed engine)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ping_interval: float = 2.0
    ping_timeout: float = 3.0
    """A worker whose event loop does not answer a ping within this is killed and replaced."""
    load_timeout: float = 30.0
    shutdown_grace: float = 10.0
    """In-flight runs get this long to finish at shutdown before they are cancelled."""
    engine_wait: float = 30.0
    """How long a run waits for its engine worker to (re)start."""
    reload_drain: float = 3600.0
    """An engine whose config changed on reload restarts once its runs finished (at most
    this long; otherwise it keeps the old config until restarted)."""
    max_frame_bytes: int = 64 * 1024 * 1024
    extra_transports: list[str] = field(default_factory=list)
    """More transport workers sharing this supervisor's runs (per-thread serialization spans
    all of them); only the main transport's lock token is taken."""
    subreaper: bool = True
    standby: bool = True
    """Keep one pre-imported spare worker so a restart skips interpreter start-up (used when
    the zygote is off or unavailable)."""
    zygote: bool = True
    """Fork engine/command workers from a pre-imported fork server (needs the subreaper)."""
    handle_signals: bool = True
    echo_worker_output: bool = True


@dataclass(eq=False)
class WorkerSlot:
    """One worker's place in the supervisor; outlives its incarnations."""

    kind: str
    plugin_id: str
    python: str | None
    policy: WorkerPolicy
    _state: str = "stopped"
    process: WorkerProcess | None = None
    identity: bytes | None = None
    secret: str | None = None
    peer: Any = None
    engine: EngineLoaded | None = None
    """What an engine worker reported at load (kept across incarnations)."""
    description: str = ""
    hello: Hello | None = None
    restarts: int = 0
    incarnation: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    ready_at: float | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)
    """Set (and replaced) on every state change: waiters re-read ``state`` after it fires,
    whatever incarnation they started waiting on."""
    settled: anyio.Event = field(default_factory=anyio.Event)
    """Set once the slot reached ready, quarantine or disable (for startup readiness)."""
    manual_restart: bool = False
    running_task: bool = False
    draining: bool = False
    """An operator restart is waiting for this engine's runs: new runs queue meanwhile."""
    active_runs: set[str] = field(default_factory=set)
    """Ids of the runs streaming from this engine's worker right now."""

    @property
    def state(self) -> str:
        """``starting``, ``ready``, ``unresponsive``, ``exited``, ``backoff``,
        ``quarantined``, ``disabled`` or ``stopped``."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        self.notify()

    def notify(self) -> None:
        """Wake everyone waiting for this slot to change."""
        event, self.changed = self.changed, anyio.Event()
        event.set()

    @property
    def name(self) -> str:
        """``engine:codex``, ``transport:telegram``, ``command:run``."""
        return f"{self.kind}:{self.plugin_id}"

    def describe(self) -> dict[str, Any]:
        """JSON-friendly status row."""
        proc = self.process
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.plugin_id,
            "state": self.state,
            "pid": proc.pid if proc is not None and proc.exit is None else None,
            "python": self.hello.python if self.hello is not None else None,
            "python_executable": self.python or sys.executable,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_error": self.last_error or self.policy.last_error,
            "uptime_s": round(time.monotonic() - self.ready_at, 3) if self.ready_at else None,
            "identity": self.identity.decode() if self.identity else None,
            "status": self.engine.status if self.engine is not None else None,
            "issue": self.engine.issue if self.engine is not None else None,
        }


class Arbiter:
    """Owns the whole supervisor: config, workers, registry, journal, control, signals."""

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.state = "starting"
        self.exit_code = EXIT_OK
        self.started_at = time.monotonic()
        self.slots: dict[str, WorkerSlot] = {}
        self.registry = RunRegistry()
        self.runs = RunService(self)
        self.runtime_service = RuntimeService(self)
        self.notifier = Notifier()
        self.stop_requested = anyio.Event()
        self.config_loaded = anyio.Event()
        self.stopped = anyio.Event()
        self._tg: TaskGroup | None = None
        self._lock: Any = None
        self._stand_ins: dict[str, EngineStandIn] = {}
        self._pending_identities: dict[bytes, WorkerSlot] = {}
        self._ready_notified = False
        self._standby: WorkerProcess | None = None
        self._zygote: Zygote | None = None
        self._foreign_commands: dict[str, set[str]] = {}
        self.transport_id = ""
        self.default_engine = ""
        self.settings: Any = None
        self.config_path = Path("takopi.toml")
        self.paths: SupervisorPaths | None = None
        self.journal: Journal = Journal(Path(os.devnull))
        self.runtime: Any = None
        self.endpoint: Any = None
        self.log_ring: LogRing | None = None
        """The supervisor's recent log lines (set by :func:`run_supervisor`)."""

    # ------------------------------------------------------------------ config
    def _load_config(self) -> None:
        from takopi.settings import load_settings, resolve_config_path, validate_settings

        config_path = resolve_config_path(self.options.config_path)
        if config_path.exists():
            self.settings, self.config_path = load_settings(config_path)
        else:
            self.settings, self.config_path = (
                validate_settings({}, config_path=config_path),
                config_path,
            )
        self.transport_id = self.options.transport_override or self.settings.transport
        if not self.transport_id:
            raise ConfigError("Invalid --transport; expected a non-empty string.")
        self._apply_supervisor_table((self.settings.model_extra or {}).get("supervisor") or {})
        for slot in self.slots.values():
            slot.policy.config = self.options.policy

    def _apply_supervisor_table(self, table: Any) -> None:
        """``[supervisor]`` tunables: ping_interval, ping_timeout, load_timeout,
        shutdown_grace, engine_wait, max_frame_bytes, extra_transports, and a
        ``[supervisor.restart]`` table with :class:`PolicyConfig` fields."""
        if not isinstance(table, dict):
            raise ConfigError("Invalid `supervisor` config; expected a table.")
        for key in (
            "ping_interval",
            "ping_timeout",
            "load_timeout",
            "shutdown_grace",
            "engine_wait",
        ):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"Invalid `supervisor.{key}`; expected a positive number.")
                setattr(self.options, key, float(value))
        if "max_frame_bytes" in table:
            value = table["max_frame_bytes"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ConfigError(
                    "Invalid `supervisor.max_frame_bytes`; expected an integer >= 1024."
                )
            self.options.max_frame_bytes = value
        extra = table.get("extra_transports")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
                raise ConfigError("Invalid `supervisor.extra_transports`; expected a list of ids.")
            self.options.extra_transports = list(extra)
        restart = table.get("restart")
        if restart is not None:
            if not isinstance(restart, dict):
                raise ConfigError("Invalid `supervisor.restart`; expected a table.")
            try:
                self.options.policy = PolicyConfig(**restart)
            except TypeError as exc:
                raise ConfigError(f"Invalid `supervisor.restart`: {exc}") from None

    def _early_plan(self) -> tuple[Path, str, list[str]] | None:
        """Config path, transport id and engine ids read from the raw TOML, so workers can
        start while the full settings (pydantic) load. None when environment overrides,
        legacy keys, foreign interpreters or a broken file could change the answer."""
        from takopi.config import read_config, resolve_config_path
        from takopi.engines import list_backends

        if any(key.upper().startswith("TAKOPI__") for key in os.environ):
            return None
        path = resolve_config_path(self.options.config_path)
        try:
            raw = read_config(path) if path.exists() else {}
            if "bot_token" in raw or "chat_id" in raw:
                return None
            plugins = raw.get("plugins") or {}
            if not isinstance(plugins, dict) or any(
                isinstance(v, dict) and "python" in v for v in plugins.values()
            ):
                return None
            transport = self.options.transport_override or raw.get("transport") or "telegram"
            enabled = plugins.get("enabled") or []
            if not isinstance(transport, str) or not isinstance(enabled, list):
                return None
            allowlist = [str(e) for e in enabled if e] or None
            self._apply_supervisor_table(raw.get("supervisor") or {})
            engines = set(list_backends(allowlist=allowlist))
        except Exception as exc:  # the full load reports it properly
            log.debug("supervisor.early_plan_skipped", error=str(exc))
            return None
        if self.options.engines is not None:
            engines &= set(self.options.engines)
        return path, transport.strip(), sorted(engines)

    def _engine_ids(self) -> list[str]:
        from takopi.engines import list_backends
        from takopi.plugins import ENGINE_GROUP, list_entrypoints_for_python

        allowlist = self.settings.plugins_allowlist()
        ids = set(list_backends(allowlist=allowlist))
        for plugin_id, table in self.settings.plugin_configs().items():
            if isinstance(table, dict) and table.get("python") and plugin_id not in ids:
                python = self.settings.plugin_python(plugin_id, config_path=self.config_path)
                try:
                    eps = list_entrypoints_for_python(python, ENGINE_GROUP, allowlist=allowlist)
                except Exception as exc:
                    log.warning("supervisor.plugin_python_failed", plugin=plugin_id, error=str(exc))
                    continue
                ids.update(ep.name for ep in eps if ep.name == plugin_id)
        if self.options.engines is not None:
            ids &= set(self.options.engines)
        return sorted(ids)

    def _python_for(self, plugin_id: str) -> str | None:
        if self.settings is None:
            return None  # early spawn: only planned when no plugin sets its own python
        try:
            return self.settings.plugin_python(plugin_id, config_path=self.config_path)  # type: ignore[no-any-return]
        except ConfigError as exc:
            log.warning("supervisor.bad_plugin_python", plugin=plugin_id, error=str(exc))
            return None

    def _build_runtime(self) -> None:
        from takopi.router import AutoRouter, RunnerEntry
        from takopi.runtime_loader import resolve_default_engine
        from takopi.transport_runtime import TransportRuntime

        engine_ids = [s.plugin_id for s in self.slots.values() if s.kind == "engine"]
        self.default_engine = (
            resolve_default_engine(
                override=self.options.default_engine_override,
                settings=self.settings,
                engine_ids=engine_ids,
            )
            if engine_ids
            else (self.options.default_engine_override or "codex")
        )
        entries = []
        for engine in engine_ids:
            stand_in = self._stand_ins.setdefault(engine, EngineStandIn(engine, self))
            slot = self.slots[f"engine:{engine}"]
            status, issue = "ok", None
            if slot.state in ("quarantined", "disabled"):
                status, issue = "load_error", slot.last_error or slot.policy.last_error
            elif slot.engine is not None:
                status = slot.engine.status
                issue = slot.engine.issue
            entries.append(RunnerEntry(engine=engine, runner=stand_in, status=status, issue=issue))  # type: ignore[arg-type]
        router = AutoRouter(entries, default_engine=self.default_engine)
        projects = self.settings.to_projects_config(
            config_path=self.config_path, engine_ids=engine_ids
        )
        kwargs = dict(
            router=router,
            projects=projects,
            allowlist=self.settings.plugins_allowlist(),
            config_path=self.config_path,
            plugin_configs=self.settings.plugin_configs(),
            watch_config=bool(self.settings.watch_config),
        )
        if self.runtime is None:
            self.runtime = TransportRuntime(**kwargs)  # type: ignore[arg-type]
        else:
            self.runtime.update(**kwargs)

    def snapshot(self) -> RuntimeSnapshot:
        """What workers cache: engines' resume codecs and plain runtime attributes."""
        engines = {}
        for slot in self.slots.values():
            if slot.kind == "engine" and slot.engine is not None:
                engines[slot.plugin_id] = slot.engine.resume or ResumeCodecInfo()
        runtime = self.runtime
        return RuntimeSnapshot(
            default_engine=self.default_engine,
            engine_ids=tuple(runtime.engine_ids) if runtime is not None else (),
            allowlist=tuple(runtime.allowlist)
            if runtime is not None and runtime.allowlist
            else None,
            config_path=str(self.config_path),
            watch_config=bool(runtime.watch_config) if runtime is not None else False,
            engines=engines,
        )

    async def _push_snapshot(self) -> None:
        self._build_runtime()
        snap = self.snapshot()
        for slot in list(self.slots.values()):
            if (
                slot.kind in ("transport", "command")
                and slot.peer is not None
                and slot.state == "ready"
            ):
                try:
                    await slot.peer.notify("runtime.changed", snap)
                except Exception as exc:
                    log.debug("supervisor.snapshot_push_failed", worker=slot.name, error=str(exc))

    # ------------------------------------------------------------------ helpers for services
    def spawn_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the supervisor's task group (outlives RPC handlers)."""
        assert self._tg is not None
        self._tg.start_soon(fn, *args)

    def engine_peer(self, engine: str) -> Any:
        """The ready engine worker's peer, or None."""
        slot = self.slots.get(f"engine:{engine}")
        if slot is None or slot.state != "ready" or slot.peer is None or slot.peer.closed:
            return None
        return slot.peer

    async def wait_engine_peer(self, engine: str, timeout: float) -> Any:
        """Wait (bounded) for the engine worker to be ready; None if it cannot be."""
        slot = self.slots.get(f"engine:{engine}")
        if slot is None:
            return None
        with anyio.move_on_after(timeout):
            while True:
                if slot.state == "ready" and slot.peer is not None and not slot.peer.closed:
                    return slot.peer
                if slot.state in ("quarantined", "disabled") or self.state == "stopping":
                    return None
                if slot.state == "stopped" and not slot.running_task:
                    return None
                changed = slot.changed
                # A lost peer is noticed a moment before the exit changes the state.
                with anyio.move_on_after(1.0):
                    await changed.wait()
        return None

    async def acquire_engine(self, engine: str, run_id: str, timeout: float) -> Any:
        """The ready engine worker's peer for run ``run_id``, counted as in flight on it.

        While an operator restart drains the engine the run queues (no timeout: it starts on
        the new worker); then it waits (bounded by ``timeout``) for a ready worker. None if
        the engine cannot run. Pair with :meth:`release_engine`.
        """
        slot = self.slots.get(f"engine:{engine}")
        if slot is None:
            return None
        while True:
            while slot.draining and self.state != "stopping":
                changed = slot.changed
                await changed.wait()
            peer = await self.wait_engine_peer(engine, timeout)
            if peer is None:
                return None
            if not slot.draining:
                slot.active_runs.add(run_id)
                return peer

    def release_engine(self, engine: str, run_id: str) -> None:
        """Run ``run_id`` no longer uses the engine worker."""
        slot = self.slots.get(f"engine:{engine}")
        if slot is not None and run_id in slot.active_runs:
            slot.active_runs.discard(run_id)
            slot.notify()

    def engine_issue(self, engine: str) -> str:
        """Why ``engine`` cannot run right now."""
        slot = self.slots.get(f"engine:{engine}")
        if slot is None:
            return f"engine {engine!r} is not configured"
        reason = slot.last_error or slot.policy.last_error or slot.state
        return f"engine {engine!r} is unavailable ({slot.state}: {reason})"

    def engine_process(self, engine: str) -> WorkerProcess | None:
        """The engine's current worker process."""
        slot = self.slots.get(f"engine:{engine}")
        return slot.process if slot is not None else None

    def engine_exit_cause(self, engine: str) -> str | None:
        """How the engine's last worker ended (``killed by SIGKILL``)."""
        slot = self.slots.get(f"engine:{engine}")
        return slot.last_exit if slot is not None else None

    def known_pids(self) -> set[int]:
        """Pids of live worker processes (the reaper must not touch them)."""
        pids = set()
        for slot in self.slots.values():
            proc = slot.process
            if proc is not None and proc.pid is not None and proc.exit is None:
                pids.add(proc.pid)
        if self._standby is not None and self._standby.pid is not None:
            pids.add(self._standby.pid)
        zygote = self._zygote
        if zygote is not None and zygote.process is not None and zygote.process.pid is not None:
            pids.add(zygote.process.pid)
        return pids

    def _sweep(self) -> None:
        """Kill and reap orphans, unless a fork is being adopted right now."""
        if self._zygote is not None and self._zygote.in_flight:
            return
        Reaper(self.known_pids).sweep()

    # ------------------------------------------------------------------ handshake
    async def _authenticate(
        self, identity: bytes, raw_hello: dict[str, Any]
    ) -> bool | str | dict[str, Any]:
        slot = self._pending_identities.get(identity)
        if slot is None:
            log.warning("rpc.unknown_identity", identity=identity[:64].decode("utf-8", "replace"))
            return "unknown identity"
        hello = Hello.from_wire(raw_hello)
        secret = hello.secret
        if (
            secret is None
            or slot.secret is None
            or not hmac.compare_digest(secret.encode(), slot.secret.encode())
        ):
            log.warning("rpc.bad_secret", worker=slot.name)
            return "wrong secret"
        if hello.kind != slot.kind or hello.id != slot.plugin_id:
            log.warning("rpc.identity_mismatch", worker=slot.name, kind=hello.kind, id=hello.id)
            return f"this identity belongs to {slot.name}"
        from takopi.api import TAKOPI_PLUGIN_API_VERSION

        if hello.api_version != TAKOPI_PLUGIN_API_VERSION:
            return (
                f"plugin API version mismatch: worker has {hello.api_version}, "
                f"supervisor has {TAKOPI_PLUGIN_API_VERSION}"
            )
        del self._pending_identities[identity]
        slot.secret = None  # one-time
        slot.hello = hello.public()
        return True

    def _on_peer_lost(self, identity: bytes) -> None:
        log.debug("rpc.peer_lost", identity=identity[:64].decode("utf-8", "replace"))

    # ------------------------------------------------------------------ bring-up
    async def _bring_up(self, slot: WorkerSlot, peer: Any, attached: anyio.Event) -> None:
        proc = slot.process
        try:
            with anyio.fail_after(self.options.load_timeout):
                await attached.wait()
                await self.config_loaded.wait()
                if slot.kind == "engine":
                    ok = await self._load_engine(slot, peer)
                elif slot.kind == "transport":
                    ok = await self._load_transport(slot, peer)
                else:
                    ok = await self._load_command(slot, peer)
        except TimeoutError:
            slot.last_error = "worker did not finish loading in time"
            ok = False
        except Exception as exc:
            if proc is not None and proc.exit is None and self.state != "stopping":
                log.error("supervisor.bring_up_failed", worker=slot.name, error=str(exc))
                slot.last_error = f"{type(exc).__name__}: {exc}"
            ok = False
        if not ok:
            if proc is not None and proc.exit is None:
                # A failed load makes the worker exit with its code; make sure it does.
                with anyio.move_on_after(2):
                    await proc.exited.wait()
                if proc.exit is None:
                    proc.kill()
            return
        if slot.process is not proc or peer.closed:
            return
        slot.state = "ready"
        slot.ready_at = time.monotonic()
        slot.policy.on_ready()
        slot.last_error = None
        slot.settled.set()
        log.info("worker.ready", worker=slot.name, pid=slot.process.pid if slot.process else None)
        self.spawn_task(self._pinger, slot, peer)
        if slot.kind == "engine":
            await self._push_snapshot()
        self._maybe_notify_ready()

    def _load_failed(self, slot: WorkerSlot, result: object) -> bool:
        error = result.error if isinstance(result, LoadFailed) else f"unexpected answer {result!r}"
        slot.last_error = error or "load failed"
        slot.policy.last_error = slot.last_error
        log.error("worker.failed", worker=slot.name, error=slot.last_error)
        return False

    async def _load_engine(self, slot: WorkerSlot, peer: Any) -> bool:
        config = self.settings.engine_config(slot.plugin_id, config_path=self.config_path)
        result = await peer.call(
            "load", EngineLoad(config=dict(config), config_path=str(self.config_path))
        )
        if not isinstance(result, EngineLoaded):
            return self._load_failed(slot, result)
        slot.engine = result
        self._stand_ins.setdefault(slot.plugin_id, EngineStandIn(slot.plugin_id, self)).update(
            result.resume
        )
        if result.status != "ok":
            log.warning(
                "engine.not_ok", engine=slot.plugin_id, status=result.status, issue=result.issue
            )
        return True

    async def _load_transport(self, slot: WorkerSlot, peer: Any) -> bool:
        from takopi.lockfile import LockError, acquire_lock

        primary = slot.plugin_id == self.transport_id
        transport_config = self.settings.transport_config(
            slot.plugin_id, config_path=self.config_path
        )
        result = await peer.call(
            "load",
            TransportLoad(
                transport_config=dict(transport_config), config_path=str(self.config_path)
            ),
        )
        if not isinstance(result, TransportLoaded):
            return self._load_failed(slot, result)
        slot.description = result.description
        if primary and self._lock is None:
            try:
                self._lock = acquire_lock(self.config_path, result.lock_token)
            except LockError as exc:
                message = f"error: already running ({exc.hint})"
                print(message, file=sys.stderr)
                log.error("supervisor.lock_held", path=str(exc.path), pid=exc.pid)
                self.fatal(EXIT_ERROR, message)
                return False
        # check_setup wants the default engine's description; wait briefly for it.
        default_slot = self.slots.get(f"engine:{self.default_engine}")
        if default_slot is not None:
            with anyio.move_on_after(self.options.load_timeout):
                await default_slot.settled.wait()
        loaded = default_slot.engine if default_slot is not None else None
        engine_info = EngineDescription(
            id=self.default_engine,
            cli_cmd=loaded.cli_cmd if loaded is not None else None,
            install_cmd=loaded.install_cmd if loaded is not None else None,
        )
        setup: SetupReport = await peer.call(
            "check_setup",
            SetupCheck(engine=engine_info, transport_override=self.options.transport_override),
        )
        for issue in setup.issues:
            title = issue.title
            if title.startswith("install "):
                log.warning("setup.warning", transport=self.transport_id, issue=title)
                continue
            message = f"error: {title}"
            print(message, file=sys.stderr)
            log.error("setup.failed", transport=self.transport_id, issue=title)
            slot.last_error = title
            self.fatal(EXIT_ERROR, message)
            return False
        self._build_runtime()
        await peer.call(
            "start",
            TransportStart(
                snapshot=self.snapshot(),
                final_notify=self.options.final_notify,
                default_engine_override=self.options.default_engine_override,
            ),
        )
        return True

    async def _load_command(self, slot: WorkerSlot, peer: Any) -> bool:
        result = await peer.call("load", CommandLoad(snapshot=self.snapshot()))
        if not isinstance(result, CommandLoaded):
            return self._load_failed(slot, result)
        slot.description = result.description
        return True

    def _register_handlers(self, slot: WorkerSlot, peer: Any) -> None:
        if slot.kind == "transport":
            self.runtime_service.register(peer, transport=slot.plugin_id)
            self.runs.register(peer, transport=slot.plugin_id)
            peer.register("command.describe", self.command_describe)
            peer.register("command.handle", self.command_handle)
        elif slot.kind == "command":
            self.runtime_service.register(peer, transport=None)

    # ------------------------------------------------------------------ commands
    async def _command_slot(self, command_id: str) -> WorkerSlot | None:
        from takopi.commands import list_command_ids

        name = f"command:{command_id}"
        slot = self.slots.get(name)
        if slot is None:
            allowlist = self.settings.plugins_allowlist()
            known = set(list_command_ids(allowlist=allowlist))
            if command_id not in known and not self._python_for(command_id):
                return None
            slot = self._new_slot("command", command_id)
            self.spawn_task(self._supervise, slot)
        with anyio.move_on_after(self.options.load_timeout):
            await slot.settled.wait()
        return slot

    def command_ids(self) -> list[str]:
        """Command plugin ids: this interpreter's plus foreign interpreters' (cached)."""
        from takopi.commands import list_command_ids
        from takopi.plugins import COMMAND_GROUP, list_entrypoints_for_python

        allowlist = self.settings.plugins_allowlist()
        ids = set(list_command_ids(allowlist=allowlist))
        cache = self._foreign_commands
        for plugin_id, table in self.settings.plugin_configs().items():
            python = table.get("python") if isinstance(table, dict) else None
            if not python:
                continue
            python = self._python_for(plugin_id) or python
            if python not in cache:
                try:
                    eps = list_entrypoints_for_python(python, COMMAND_GROUP, allowlist=allowlist)
                except Exception as exc:  # not cached: asked again next time
                    log.warning("supervisor.plugin_python_failed", plugin=plugin_id, error=str(exc))
                    continue
                cache[python] = {ep.name for ep in eps}
            if plugin_id in cache[python]:
                ids.add(plugin_id)
        return sorted(ids)

    async def command_describe(self, command_id: str) -> CommandDescription:
        """Start the command worker on first use; its description."""
        slot = await self._command_slot(str(command_id))
        if slot is None:
            return CommandDescription(error=f"Unknown command {command_id!r}.")
        if slot.state != "ready":
            reason = slot.last_error or slot.policy.last_error or slot.state
            return CommandDescription(error=f"command {command_id!r} is unavailable: {reason}")
        return CommandDescription(description=slot.description)

    async def command_handle(self, command_id: str, invocation: CommandInvocation) -> Any:
        """Relay one command invocation to its worker (executor refs travel through us)."""
        slot = await self._command_slot(str(command_id))
        if slot is None or slot.state != "ready" or slot.peer is None:
            raise RuntimeError(f"command {command_id!r} is unavailable")
        return await slot.peer.call("handle", invocation)

    # ------------------------------------------------------------------ slots
    def _new_slot(self, kind: str, plugin_id: str) -> WorkerSlot:
        slot = WorkerSlot(
            kind=kind,
            plugin_id=plugin_id,
            python=self._python_for(plugin_id),
            policy=WorkerPolicy(config=self.options.policy),
        )
        self.slots[slot.name] = slot
        return slot

    def _env_delta(self, kind: str) -> dict[str, str]:
        """What ``kind``'s environment has on top of the zygote's environment."""
        base = self._zygote.env if self._zygote is not None else {}
        full = self._worker_env_for(kind)
        return {k: v for k, v in full.items() if base.get(k) != v}

    def _worker_env(self, slot: WorkerSlot) -> dict[str, str]:
        return self._worker_env_for(slot.kind)

    def _worker_env_for(self, kind: str) -> dict[str, str]:
        env = base_worker_env(os.environ, transport=kind == "transport")
        # Plugins calling ``load_settings()`` without a path must read our --config, not
        # ~/.takopi/takopi.toml (zygote-forked and standby workers get this too).
        env[CONFIG_PATH_ENV] = str(Path(self.config_path).absolute())
        return env

    async def _spawn(self, slot: WorkerSlot) -> WorkerProcess:
        from takopi.rpc import new_identity

        assert self.paths is not None
        slot.incarnation += 1
        slot.identity = new_identity(slot.kind, slot.plugin_id)
        slot.secret = secrets.token_urlsafe(32)
        slot.description = ""
        slot.peer = None
        slot.ready_at = None
        self._pending_identities[slot.identity] = slot
        argv = worker_argv(
            slot.python,
            kind=slot.kind,
            plugin_id=slot.plugin_id,
            endpoint=self.paths.rpc_address,
            identity=slot.identity.decode(),
        )
        argv += ["--supervisor-pid", str(os.getpid())]
        proc = await self._fork_from_zygote(slot)
        if proc is None:
            proc = self._take_standby(slot)
        if proc is None:
            proc = WorkerProcess(
                argv,
                name=slot.name,
                secret=slot.secret.encode(),
                env=self._worker_env(slot),
                inherit_stdio=slot.kind == "transport",
                echo=self._echo(),
            )
            proc.spawn()
        slot.process = proc
        slot.state = "starting"
        slot.policy.on_spawn()
        log.info(
            "worker.spawned", worker=slot.name, pid=proc.pid, python=slot.python or sys.executable
        )
        return proc

    def _echo(self) -> Any:
        if self.options.echo_worker_output and hasattr(sys.stderr, "buffer"):
            return sys.stderr.buffer
        return None

    def _zygote_serves(self, slot: WorkerSlot) -> bool:
        return self._zygote is not None and slot.python is None

    async def _fork_from_zygote(self, slot: WorkerSlot) -> WorkerProcess | None:
        """A worker forked by the fork server, or None (fall back to a fresh process)."""
        zygote = self._zygote
        if zygote is None or not self._zygote_serves(slot):
            return None
        if not zygote.alive:
            proc = zygote.process
            if proc is not None and proc.popen is not None and self.state == "running":
                # Nothing watches the zygote's pidfd: its exit status is the Popen's.
                code = proc.popen.returncode
                exit_text = ExitInfo(code).describe() if code is not None else None
                log.warning("zygote.lost", exit=exit_text)
                zygote.close()
                zygote.start()  # next spawns use it again; this one spawns fresh
            return None
        assert slot.identity is not None and slot.secret is not None
        proc = await zygote.fork(
            name=slot.name,
            kind=slot.kind,
            plugin_id=slot.plugin_id,
            identity=slot.identity.decode(),
            secret=slot.secret,
            timeout=min(self.options.load_timeout, 10.0),
            inherit_stdio=slot.kind == "transport",
            env=self._env_delta(slot.kind),
        )
        if proc is None:
            log.warning("zygote.fork_failed", worker=slot.name)
        return proc

    def _take_standby(self, slot: WorkerSlot) -> WorkerProcess | None:
        """Hand the warm spare to ``slot`` (same interpreter, not a transport)."""
        spare = self._standby
        if spare is None or slot.python is not None or slot.kind == "transport":
            return None
        self._standby = None
        assert slot.identity is not None and slot.secret is not None
        if not spare.assign(
            name=slot.name,
            kind=slot.kind,
            plugin_id=slot.plugin_id,
            identity=slot.identity.decode(),
            secret=slot.secret.encode(),
        ):
            return None
        self.spawn_task(self._refill_standby, 0.5)
        return spare

    async def _refill_standby(self, delay: float = 0.0) -> None:
        """Start a new spare (after ``delay``, so it does not compete with a restart)."""
        if not self.options.standby or self._standby is not None:
            return
        if self._zygote is not None and self._zygote.alive:
            return  # the fork server makes a spare pointless
        if delay:
            await anyio.sleep(delay)
        if self.state not in ("running", "reloading") or self._standby is not None:
            return
        assert self.paths is not None
        argv = [
            sys.executable,
            "-m",
            "takopi.worker",
            "--standby",
            "--endpoint",
            self.paths.rpc_address,
            "--supervisor-pid",
            str(os.getpid()),
        ]
        spare = WorkerProcess(
            argv,
            name="standby",
            secret=b"",
            env=self._worker_env_for("engine"),
            echo=self._echo(),
            standby=True,
        )
        try:
            spare.spawn()
        except OSError as exc:
            log.warning("worker.standby_failed", error=str(exc))
            return
        self._standby = spare

    async def _supervise(self, slot: WorkerSlot) -> None:
        """Keep one slot's worker running per policy until stop, quarantine or disable."""
        if slot.running_task:
            return
        slot.running_task = True
        try:
            while self.state != "stopping":
                if self.stop_requested.is_set():
                    break
                try:
                    proc = await self._spawn(slot)
                except Exception as exc:
                    slot.last_error = f"cannot start worker: {exc}"
                    log.error("worker.spawn_failed", worker=slot.name, error=str(exc))
                    slot.state = "quarantined"
                    slot.policy.quarantined = True
                    break
                was_ready = False
                try:
                    exit_info = await proc.watch(self._on_process_exit(slot))
                finally:
                    was_ready = slot.ready_at is not None
                self._pending_identities.pop(slot.identity or b"", None)
                if self.state == "stopping" or self.stop_requested.is_set():
                    slot.state = "stopped"
                    break
                if slot.manual_restart:
                    slot.manual_restart = False
                    slot.restarts += 1
                    continue
                error = slot.last_error or (None if was_ready else _tail_error(proc))
                decision = slot.policy.on_exit(
                    exit_code=exit_info.returncode, was_ready=was_ready, error=error
                )
                log.warning(
                    "worker.exited",
                    worker=slot.name,
                    exit=exit_info.describe(),
                    action=decision.action,
                    delay=round(decision.delay, 3),
                )
                if decision.action == "restart":
                    slot.state = "backoff"
                    slot.restarts += 1
                    if decision.delay > 0:
                        with anyio.move_on_after(decision.delay):
                            await self.stop_requested.wait()
                    continue
                slot.state = "quarantined" if decision.action == "quarantine" else "disabled"
                slot.last_error = decision.reason
                slot.settled.set()
                log.error(
                    "worker.gave_up", worker=slot.name, state=slot.state, reason=decision.reason
                )
                if slot.kind == "engine":
                    await self._push_snapshot()
                if slot.kind == "transport" and slot.plugin_id == self.transport_id:
                    message = (
                        f"error: transport {self.transport_id!r} {slot.state}: {decision.reason}"
                    )
                    print(message, file=sys.stderr)
                    self.fatal(
                        EXIT_TRANSPORT_QUARANTINED if self.exit_code == EXIT_OK else self.exit_code,
                        message,
                    )
                self._maybe_notify_ready()
                break
        finally:
            slot.running_task = False

    def _on_process_exit(self, slot: WorkerSlot) -> Callable[[WorkerProcess], None]:
        def on_exit(proc: WorkerProcess) -> None:
            assert proc.exit is not None
            slot.last_exit = proc.exit.describe()
            if slot.state not in ("stopped",):
                slot.state = "stopped" if self.state == "stopping" else "exited"
            proc.kill_leftovers()
            if self.options.subreaper:
                self._sweep()
            peer = slot.peer
            slot.peer = None
            if peer is not None:
                from takopi.rpc import PeerGone

                try:
                    peer.close(PeerGone(f"{slot.name} worker {slot.last_exit}"))
                except Exception as exc:  # pragma: no cover - defensive
                    log.debug("rpc.close_failed", error=str(exc))
            if (
                slot.kind == "transport"
                and slot.plugin_id == self.transport_id
                and proc.exit.returncode == 0
                and slot.ready_at is not None
                and self.state == "running"
                and not slot.manual_restart  # `takopictl restart` stops it with SIGTERM
            ):
                # The transport finished on its own (e.g. console at end of input).
                log.info("transport.finished", transport=slot.plugin_id)
                self.request_stop()

        return on_exit

    async def _pinger(self, slot: WorkerSlot, peer: Any) -> None:
        """Event-loop liveness: a worker that does not answer in time is killed."""
        interval = self.options.ping_interval
        while self.state != "stopping" and slot.peer is peer and not peer.closed:
            await anyio.sleep(interval)
            if slot.peer is not peer or peer.closed or self.state == "stopping":
                return
            try:
                await peer.ping(timeout=self.options.ping_timeout)
            except Exception as exc:
                if slot.peer is not peer or peer.closed:
                    return
                slot.state = "unresponsive"
                slot.last_error = (
                    f"unresponsive: no ping answer within {self.options.ping_timeout:g}s"
                )
                log.error("worker.unresponsive", worker=slot.name, error=str(exc))
                if slot.process is not None:
                    slot.process.kill()
                return

    # ------------------------------------------------------------------ readiness / notify
    def _maybe_notify_ready(self) -> None:
        if self._ready_notified or self.state != "running":
            return
        transport = self.slots.get(f"transport:{self.transport_id}")
        if transport is None or transport.state != "ready":
            return
        if not all(s.settled.is_set() for s in self.slots.values() if s.kind == "engine"):
            return
        self._ready_notified = True
        ready = [
            s.plugin_id for s in self.slots.values() if s.kind == "engine" and s.state == "ready"
        ]
        self.notifier.ready(f"running: {self.transport_id}; engines: {', '.join(ready) or 'none'}")
        log.info(
            "supervisor.ready",
            transport=self.transport_id,
            engines=ready,
            startup_s=round(time.monotonic() - self.started_at, 3),
        )

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await anyio.sleep(interval)

    async def _config_watcher(self, poll_interval: float = 1.0) -> None:
        """``watch_config = true``: reload when the config file changes (mtime/size), like
        the reference's hot reload. Transport changes are reported, not applied."""
        from takopi.utils.json_state import file_signature

        last = file_signature(self.config_path)
        reported_failure: tuple[int, int] | None = None
        while True:
            await anyio.sleep(poll_interval)
            current = file_signature(self.config_path)
            if current == last or current is None:
                continue
            last = current
            if not self.settings.watch_config:
                continue
            result = await self.reload()
            if result.get("reloaded"):
                reported_failure = None
                log.info(
                    "config.reload.applied",
                    restart_required=result.get("restart_required") or [],
                    restarted=result.get("restarted") or [],
                )
            elif reported_failure != current:
                reported_failure = current  # once per file state, not every poll
                log.warning("config.reload.rejected", error=result.get("error"))

    async def _sweeper(self) -> None:
        while True:
            await anyio.sleep(1.0)
            self._sweep()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    result = await self.reload()
                    log.info(
                        "supervisor.reloaded",
                        **{k: v for k, v in result.items() if k != "reloaded"},
                        ok=result.get("reloaded"),
                    )
                else:
                    log.info("supervisor.signal", signal=signal.Signals(signum).name)
                    self.request_stop()

    # ------------------------------------------------------------------ control verbs
    def status(self) -> dict[str, Any]:
        """Snapshot for ``takopictl status``."""
        assert self.paths is not None
        return {
            "pid": os.getpid(),
            "state": self.state,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "config_path": str(self.config_path),
            "transport": self.transport_id,
            "default_engine": self.default_engine,
            "runtime_dir": str(self.paths.runtime_dir),
            "state_dir": str(self.paths.state_dir),
            "runs": len(self.registry.runs),
            "pending_deliveries": len(self.journal.pending()),
            "workers": [s.describe() for s in self.slots.values()],
            "helpers": self._helpers(),
        }

    def _helpers(self) -> list[dict[str, Any]]:
        """The fork server and the standby spare (not workers: they host no plugin)."""
        rows = []
        for name, proc in (
            ("zygote", self._zygote.process if self._zygote is not None else None),
            ("standby", self._standby),
        ):
            if proc is not None and proc.pid is not None and proc.exit is None:
                rows.append({"name": name, "pid": proc.pid})
        return rows

    def _resolve_slots(self, names: list[str]) -> list[WorkerSlot]:
        """Slots named ``kind:id`` or ``id`` (all when empty); KeyError for an unknown one."""
        targets = []
        for name in names or list(self.slots):
            slot = (
                self.slots.get(name)
                or self.slots.get(f"engine:{name}")
                or self.slots.get(f"transport:{name}")
                or self.slots.get(f"command:{name}")
            )
            if slot is None:
                raise KeyError(name)
            targets.append(slot)
        return targets

    async def restart(
        self, names: list[str], *, force: bool, wait_timeout: float = 600.0
    ) -> dict[str, Any]:
        """``takopictl restart``: restart workers, draining engines first.

        New runs for a targeted engine queue from now on; without ``force`` its runs in
        flight may finish (up to ``wait_timeout``, else :class:`RestartRefused` and nothing is
        restarted); with ``force`` they are cancelled (each gets its terminal reply). Then
        the workers restart and, once the engines' new workers are ready, the queue is
        released. Returns ``{"restarted", "waited", "cancelled"}`` (run counts).
        """
        targets = self._resolve_slots(names)
        for slot in targets:
            while slot.draining and self.state != "stopping":  # another restart's drain
                changed = slot.changed
                await changed.wait()
        engines = [
            s
            for s in targets
            if s.kind == "engine" and s.running_task and s.state not in ("quarantined", "disabled")
        ]
        for slot in engines:
            slot.draining = True
            slot.notify()
        try:
            waited = sum(len(s.active_runs) for s in engines)
            cancelled = 0
            if force:
                for slot in engines:
                    for run_id in list(slot.active_runs):
                        cancelled += self.registry.cancel(run_id, RESTART_REASON)
            if waited:
                log.info(
                    "supervisor.restart_draining",
                    engines=[s.plugin_id for s in engines],
                    runs=waited,
                    force=force,
                )
            with anyio.move_on_after(FORCE_DRAIN_TIMEOUT if force else wait_timeout):
                for slot in engines:
                    while slot.active_runs and self.state != "stopping":
                        changed = slot.changed
                        await changed.wait()
            busy = [s.plugin_id for s in engines if s.active_runs]
            if busy and not force:
                raise RestartRefused(
                    f"runs still in flight on {', '.join(busy)} after {wait_timeout:g}s; "
                    "nothing restarted (use --force to cancel them)"
                )
            if self.state == "stopping":
                return {"restarted": [], "waited": waited, "cancelled": cancelled}
            before = {s.name: s.incarnation for s in engines}
            restarted = await self.restart_workers([s.name for s in targets], force=force)
            with anyio.move_on_after(self.options.load_timeout):
                for slot in engines:
                    while (
                        slot.incarnation == before[slot.name]
                        or slot.state not in ("ready", "quarantined", "disabled")
                    ) and self.state != "stopping":
                        changed = slot.changed
                        await changed.wait()
        finally:
            for slot in engines:
                slot.draining = False
                slot.notify()
        return {"restarted": restarted, "waited": waited, "cancelled": cancelled}

    async def restart_workers(self, names: list[str], *, force: bool) -> list[str]:
        """Restart the named workers (all when empty) right away; ``force`` kills and
        un-quarantines. (:meth:`restart` drains engines' runs first.)"""
        targets = self._resolve_slots(names)
        restarted = []
        for slot in targets:
            if slot.state in ("quarantined", "disabled") or not slot.running_task:
                if slot.state == "disabled" and not force:
                    continue
                slot.policy.reset()
                slot.settled = anyio.Event()
                slot.last_error = None
                self.spawn_task(self._supervise, slot)
            else:
                slot.manual_restart = True
                if slot.process is not None:
                    if force:
                        slot.process.kill()
                    else:
                        self.spawn_task(slot.process.stop, _stop_timeout(slot))
            restarted.append(slot.name)
        return restarted

    def request_stop(self) -> None:
        """Begin a graceful shutdown (idempotent)."""
        self.stop_requested.set()

    def fatal(self, code: int, message: str) -> None:
        """Stop with a non-zero exit code."""
        if self.exit_code == EXIT_OK:
            self.exit_code = code
        log.error("supervisor.fatal", message=message, code=code)
        self.request_stop()

    async def reload(self) -> dict[str, Any]:
        """Re-read the config; apply routing/projects/plugin tables, restart changed engines."""
        from takopi.settings import load_settings

        self.state = "reloading" if self.state == "running" else self.state
        self.notifier.reloading()
        old = self.settings
        try:
            settings, _path = load_settings(self.config_path)
        except (ConfigError, OSError) as exc:
            log.warning("config.reload.failed", error=str(exc))
            self.state = "running" if self.state == "reloading" else self.state
            self.notifier.ready("reload failed; previous config kept")
            return {"reloaded": False, "error": str(exc), "restart_required": []}
        self.settings = settings
        self._foreign_commands.clear()
        restart_required = []
        if settings.transport != old.transport or (
            settings.transport_config(self.transport_id, config_path=self.config_path)
            != old.transport_config(self.transport_id, config_path=self.config_path)
        ):
            restart_required.append(f"transport:{self.transport_id}")
        changed = []
        for slot in list(self.slots.values()):
            if slot.kind == "engine":
                try:
                    if settings.engine_config(slot.plugin_id) != old.engine_config(slot.plugin_id):
                        changed.append(slot.name)
                except ConfigError:
                    changed.append(slot.name)
        try:
            await self._push_snapshot()
        except ConfigError as exc:
            self.settings = old
            self._build_runtime()
            self.state = "running" if self.state == "reloading" else self.state
            return {"reloaded": False, "error": str(exc), "restart_required": []}
        if changed:
            # Drained in the background: runs in flight finish on the old config.
            self.spawn_task(self._restart_after_reload, changed)
        self.state = "running" if self.state == "reloading" else self.state
        self.notifier.ready("reloaded")
        return {
            "reloaded": True,
            "error": None,
            "restart_required": restart_required,
            "restarted": changed,
        }

    async def _restart_after_reload(self, names: list[str]) -> None:
        try:
            await self.restart(names, force=False, wait_timeout=self.options.reload_drain)
        except RestartRefused as exc:
            log.warning("config.reload.restart_skipped", workers=names, error=str(exc))

    def worker_logs(self, name: str, lines: int) -> dict[str, Any]:
        """Recent output of one worker, or the supervisor's own log lines (``supervisor``)."""
        slot = self.slots.get(name)
        if slot is None and name == "supervisor":
            ring = self.log_ring
            return {
                "name": "supervisor",
                "pid": os.getpid(),
                "lines": ring.tail(lines) if ring is not None else [],
            }
        if slot is None:
            for candidate in self.slots.values():
                if candidate.plugin_id == name:
                    slot = candidate
                    break
        if slot is None:
            raise KeyError(name)
        proc = slot.process
        return {
            "name": slot.name,
            "pid": proc.pid if proc is not None else None,
            "lines": proc.tail(lines) if proc is not None else [],
        }

    def runs_info(self) -> dict[str, Any]:
        """Runs in flight and pending deliveries."""
        return {
            "runs": self.registry.describe(),
            "pending_deliveries": [e.delivery().to_dict() for e in self.journal.pending()],
        }

    def cancel_run(self, run_id: str) -> bool:
        """Cancel one run by id (from ``takopictl cancel``)."""
        return self.registry.cancel(run_id, OPERATOR_REASON)

    # ------------------------------------------------------------------ main
    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        from takopi.rpc import RouterEndpoint

        plan = self._early_plan()
        try:
            if plan is None:
                self._load_config()
                engine_ids = self._engine_ids()
            else:
                self.config_path, self.transport_id, engine_ids = plan
            self.paths = resolve_paths(self.config_path)
            self.journal = Journal(self.paths.journal_path)
            interrupted = self.journal.load()
            for entry in interrupted:
                log.warning(
                    "run.interrupted",
                    run_id=entry.run_id,
                    engine=entry.engine,
                    resume_line=entry.resume_line,
                )
            for engine in engine_ids:
                self._new_slot("engine", engine)
            self._new_slot("transport", self.transport_id)
            for extra in self.options.extra_transports:
                if extra != self.transport_id:
                    self._new_slot("transport", extra)
            if plan is None:
                self._build_runtime()
                self.config_loaded.set()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            log.error("supervisor.config_error", error=str(exc))
            return EXIT_ERROR
        subreaper = become_subreaper() if self.options.subreaper else False
        self.endpoint = RouterEndpoint(
            self.paths.rpc_address,
            authenticate=self._authenticate,
            on_peer=self._on_peer_registered,
            on_peer_lost=self._on_peer_lost,
            max_frame_bytes=self.options.max_frame_bytes,
        )
        try:
            self.endpoint.start()
        except Exception as exc:
            message = f"error: cannot bind {self.paths.rpc_address}: {exc}"
            print(message, file=sys.stderr)
            log.error("supervisor.bind_failed", error=str(exc))
            return EXIT_ERROR
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        if self.options.zygote and subreaper:
            self._zygote = Zygote(self.paths.rpc_address, echo=self._echo())
            try:
                self._zygote.start()
            except OSError as exc:
                log.warning("zygote.start_failed", error=str(exc))
                self._zygote = None
        elif discard_early():
            log.info("zygote.early_discarded", reason="zygote off or no subreaper")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.endpoint.serve)
                await tg.start(ControlServer(self.paths.control_socket, bind_verbs(self)).serve)
                if self.options.handle_signals:
                    tg.start_soon(self._signals)
                tg.start_soon(self._watchdog)
                tg.start_soon(self._config_watcher)
                if self.options.subreaper:
                    tg.start_soon(self._sweeper)
                self.state = "running"
                self.notifier.status("starting workers")
                for slot in list(self.slots.values()):
                    tg.start_soon(self._supervise, slot)
                # Workers are importing; validate the full config meanwhile.
                if plan is not None and not await self._finish_early_config(plan):
                    self.request_stop()
                tg.start_soon(self._refill_standby, 1.0)
                await self.stop_requested.wait()
                await self._shutdown()
                tg.cancel_scope.cancel()
        finally:
            if self.options.handle_signals:
                # The signal receiver is closed: a late SIGTERM must not kill the teardown.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
            if self._lock is not None:
                self._lock.release()
            self.journal.close()
            try:
                aclose = getattr(self.endpoint, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                        await aclose()
            except Exception:
                pass
            for path in (self.paths.pid_file,):
                try:
                    path.unlink()
                except OSError:
                    pass
            self.stopped.set()
        return self.exit_code

    async def _finish_early_config(self, plan: tuple[Path, str, list[str]]) -> bool:
        """Load the full settings after an early spawn; False (and an error) if unusable."""
        try:
            await anyio.to_thread.run_sync(self._load_config)
            engine_ids = self._engine_ids()
            if self.transport_id != plan[1] or engine_ids != plan[2]:
                # Cannot happen without env overrides (excluded); be loud if it does.
                raise ConfigError(
                    f"config changed while starting (transport {plan[1]!r} → "
                    f"{self.transport_id!r}, engines {plan[2]} → {engine_ids})"
                )
            self._build_runtime()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            log.error("supervisor.config_error", error=str(exc))
            if self.exit_code == EXIT_OK:
                self.exit_code = EXIT_ERROR
            return False
        self.config_loaded.set()
        return True

    def _on_peer_registered(self, peer: Any) -> None:
        identity = getattr(peer, "identity", None)
        if identity is None and isinstance(peer.info, dict):
            identity = peer.info.get("identity")
        slot = next((s for s in self.slots.values() if s.identity == identity), None)
        if slot is None:
            log.warning("rpc.peer_without_slot")
            return
        slot.peer = peer
        attached = anyio.Event()
        # The worker says when its handlers are registered; nothing is sent to it before
        # (a request racing the WELCOME could otherwise arrive before the worker's Peer).
        peer.register("worker.attached", lambda: attached.set())
        self._register_handlers(slot, peer)
        self.spawn_task(self._bring_up, slot, peer, attached)

    async def _shutdown(self) -> None:
        log.info("supervisor.stopping", runs=len(self.registry.runs))
        self.state = "stopping"
        self.notifier.stopping()
        self.registry.accepting = False
        if self.registry.runs:
            with anyio.move_on_after(self.options.shutdown_grace):
                await self.runs.idle.wait()
        if self.registry.runs:
            count = self.registry.cancel_all(SHUTDOWN_REASON)
            log.warning("supervisor.cancelling_runs", count=count)
            with anyio.move_on_after(5):
                await self.runs.idle.wait()
            await anyio.sleep(0.2)  # let the terminal replies reach the transport
        if self._standby is not None:
            self._standby.discard()
            self._standby = None
        if self._zygote is not None:
            self._zygote.close()
        order = ["transport", "command", "engine"]
        for kind in order:
            async with anyio.create_task_group() as tg:
                for slot in self.slots.values():
                    if slot.kind == kind and slot.process is not None and slot.process.exit is None:
                        tg.start_soon(slot.process.stop, _stop_timeout(slot))
        for slot in self.slots.values():
            if slot.state not in ("quarantined", "disabled"):
                slot.state = "stopped"
        if self.options.subreaper:
            Reaper(self.known_pids).sweep()
        log.info("supervisor.stopped", exit_code=self.exit_code)


def _stop_timeout(slot: WorkerSlot) -> float:
    """How long a worker gets between SIGTERM and SIGKILL."""
    if slot.kind == "transport":
        # Its final messages go out first (takopi.worker.transport.STOP_GRACE).
        return TRANSPORT_STOP_TIMEOUT
    return WORKER_STOP_TIMEOUT


def _tail_error(proc: WorkerProcess) -> str | None:
    """The last meaningful output line of a worker that died before it was ready."""
    for line in reversed(proc.tail(50)):
        text = line.strip()
        if text:
            return text[-500:]
    return None


def run_supervisor(options: SupervisorOptions) -> int:
    """Run the supervisor until it stops; returns the exit code (CLI entry point)."""
    from takopi.logging import setup_logging

    ring = LogRing(sys.stderr)
    setup_logging(debug=options.debug, stream=ring)  # type: ignore[arg-type]
    arbiter = Arbiter(options)
    arbiter.log_ring = ring
    try:
        return int(anyio.run(arbiter.run, backend="asyncio"))
    except KeyboardInterrupt:
        log.info("shutdown.interrupted")
        return 130


__all__ = ["Arbiter", "RestartRefused", "SupervisorOptions", "WorkerSlot", "run_supervisor"]
