"""The arbiter: owns the supervisor process as a whole.

It loads the config, binds the RPC endpoint and the control socket, starts the transport,
decides which engines exist (:class:`~takopi.supervisor.engine_setup.EngineSetup`) and creates
a :class:`~takopi.supervisor.watcher.Watcher` per engine that can run (its worker starts on
first use and retires when idle; command workers start on first use), serves the run registry
and the runtime to workers, reports to systemd, reloads, and shuts down in order. Each worker's lifecycle is its watcher's; what a kind of worker means
is in :mod:`takopi.supervisor.kinds`; processes come from the
:class:`~takopi.supervisor.spawner.Spawner`; HELLOs are checked by the
:class:`~takopi.supervisor.handshake.Handshake`. ``run_supervisor(options) -> int`` is the CLI
entry point.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from takopi.config import CONFIG_PATH_ENV, ConfigError
from takopi.logging import get_logger
from takopi.supervisor.config import EarlyPlan, SupervisorConfig
from takopi.supervisor.control import ControlServer
from takopi.supervisor.engine_pool import EnginePool
from takopi.supervisor.engine_setup import EngineSetup
from takopi.supervisor.handshake import Handshake
from takopi.supervisor.journal import Journal
from takopi.supervisor.kinds.command import CommandKind, CommandRelay
from takopi.supervisor.kinds.engine import EngineKind
from takopi.supervisor.kinds.transport import TransportKind
from takopi.supervisor.logring import LogRing
from takopi.supervisor.notify import Notifier
from takopi.supervisor.options import EXIT_ERROR, EXIT_OK, SupervisorOptions
from takopi.supervisor.paths import SupervisorPaths, resolve_paths
from takopi.supervisor.policy import WorkerPolicy
from takopi.supervisor.ports import ResumeLines
from takopi.supervisor.probe import EngineProber
from takopi.supervisor.reaper import Reaper, become_subreaper
from takopi.supervisor.registry import RunRegistry
from takopi.supervisor.reloading import Reloader
from takopi.supervisor.restart import Restarter, RestartRefused
from takopi.supervisor.routing import Routing
from takopi.supervisor.runs import OPERATOR_REASON, SHUTDOWN_REASON, RunService
from takopi.supervisor.runtime_service import RuntimeService
from takopi.supervisor.spawner import Spawner
from takopi.supervisor.verbs import bind_verbs
from takopi.supervisor.watcher import Watcher, WorkerState
from takopi.supervisor.workers import Workers
from takopi.utils.memory import trim_memory

if TYPE_CHECKING:
    from takopi.rpc import RouterEndpoint
    from takopi.supervisor.watcher import WorkerKind

log = get_logger(__name__)

KIND_ORDER = ("transport", "command", "engine")
"""Shutdown order: transports deliver their last replies while engines still answer."""


class Arbiter:
    """Owns the whole supervisor: config, workers, registry, journal, control, signals."""

    def __init__(self, options: SupervisorOptions) -> None:
        self.options = options
        self.state = "starting"
        self.exit_code = EXIT_OK
        self.started_at = time.monotonic()
        self.config = SupervisorConfig(options)
        self.workers = Workers()
        self.handshake = Handshake()
        self.registry = RunRegistry()
        self.resume_lines = ResumeLines()
        self.engines = EnginePool(self.workers, self.resume_lines)
        self.routing = Routing(self.config, self.engines, self.workers)
        self.notifier = Notifier()
        self.stop_requested = anyio.Event()
        self.config_loaded = anyio.Event()
        self.stopped = anyio.Event()
        self.paths: SupervisorPaths | None = None
        self.journal = Journal(Path(os.devnull))
        """Replaced by the state directory's journal once the config is known."""
        self.spawner: Spawner | None = None
        self.endpoint: RouterEndpoint | None = None
        self.log_ring: LogRing | None = None
        """The supervisor's recent log lines (set by :func:`run_supervisor`)."""
        self._tg: TaskGroup | None = None
        self._ready_notified = False
        self._kinds: dict[str, WorkerKind] = {}
        self.runs: RunService | None = None
        self.transports: TransportKind | None = None
        self.restarter = Restarter(self.workers, self.registry, self)
        self.prober: EngineProber | None = None
        self.engine_setup: EngineSetup | None = None
        self.reloader: Reloader | None = None

    # ------------------------------------------------------------------ assembly

    def _assemble(self, paths: SupervisorPaths) -> None:
        """Build the services and worker kinds once the state directory is known."""
        self.paths = paths
        self.journal = Journal(paths.journal_path)
        self.spawner = Spawner(
            rpc_address=paths.rpc_address,
            config_path=self.config.config_path,
            echo=self._echo(),
            fork_timeout=min(self.options.load_timeout, 10.0),
        )
        self.spawner.on_standby_used = lambda: self.spawn_task(self._refill_standby, 0.5)
        self.prober = EngineProber(self.spawner, timeout=self.options.load_timeout)
        self.engine_setup = EngineSetup(
            config=self.config,
            engines=self.engines,
            prober=self.prober,
            new_watcher=lambda engine: self._new_watcher("engine", engine),
        )
        self.reloader = Reloader(
            host=self, config=self.config, routing=self.routing, engine_setup=self.engine_setup
        )
        self.handshake.environment = self._worker_environment
        self.runs = RunService(
            registry=self.registry,
            journal=self.journal,
            engines=self.engines,
            tasks=self,
            resume_lines=self.resume_lines,
            engine_wait=lambda: self.options.engine_wait,
            orphan_grace=lambda: self.options.orphan_grace,
        )
        runtime_service = RuntimeService(
            runtime=lambda: self.routing.runtime,
            engines=self.engines,
            resume_lines=self.resume_lines,
            deliveries=self.journal,
            command_ids=self.config.command_ids,
            stand_in=self.engines.stand_in,
        )
        commands = CommandRelay(
            self.config, self.workers, lambda plugin_id: self._new_watcher("command", plugin_id)
        )
        self.transports = TransportKind(
            host=self,
            config=self.config,
            routing=self.routing,
            engines=self.engines,
            runtime_service=runtime_service,
            runs=self.runs,
            commands=commands,
        )
        self._kinds = {
            "engine": EngineKind(self.config, self.engines, self.routing),
            "transport": self.transports,
            "command": CommandKind(self.routing, runtime_service),
        }

    async def _worker_environment(self, kind: str, plugin_id: str) -> dict[str, str]:
        """The environment a worker gets in its WELCOME (the config says whose secrets are
        whose: wait for it, bounded, when workers started before it was read)."""
        with anyio.move_on_after(self.options.load_timeout):
            await self.config_loaded.wait()
        env = self.config.env_policy(os.environ).for_worker(kind, plugin_id)
        # Plugins calling ``load_settings()`` without a path must read our --config.
        env[CONFIG_PATH_ENV] = str(Path(self.config.config_path).absolute())
        return env

    def _new_watcher(self, kind: str, plugin_id: str) -> Watcher:
        assert self.spawner is not None
        return self.workers.add(
            Watcher(
                self._kinds[kind],
                plugin_id,
                python=self.config.python_for(plugin_id),
                policy=WorkerPolicy(config=self.options.policy),
                host=self,
                processes=self.spawner,
                identities=self.handshake,
            )
        )

    def _echo(self) -> Any:
        if self.options.echo_worker_output and hasattr(sys.stderr, "buffer"):
            return sys.stderr.buffer
        return None

    # ------------------------------------------------------------------ WatcherHost

    def spawn_task(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the supervisor's task group (outlives RPC handlers)."""
        assert self._tg is not None
        self._tg.start_soon(fn, *args)

    def known_pids(self) -> set[int]:
        """Pids of live worker and helper processes (the reaper must not touch them)."""
        pids = self.workers.live_pids()
        if self.prober is not None:
            pids |= self.prober.pids
        if self.spawner is not None:
            for _name, proc in self.spawner.helper_processes():
                if proc.pid is not None:
                    pids.add(proc.pid)
        return pids

    def after_worker_exit(self) -> None:
        """Kill and reap what a dead worker left behind (unless a fork is being adopted)."""
        if self.options.subreaper:
            self._sweep()

    def _sweep(self) -> None:
        if self.spawner is not None and self.spawner.forking:
            return
        Reaper(self.known_pids).sweep()

    def maybe_notify_ready(self) -> None:
        """Tell systemd once the main transport is ready (the engines were decided first)."""
        if self._ready_notified or self.state != "running":
            return
        transport = self.workers.get(f"transport:{self.config.transport_id}")
        if transport is None or transport.state is not WorkerState.READY:
            return
        if not self.engines.catalog.decided.is_set():
            return
        self._ready_notified = True
        offered = self.engines.ids()
        self.notifier.ready(
            f"running: {self.config.transport_id}; engines: {', '.join(offered) or 'none'}"
        )
        log.info(
            "supervisor.ready",
            transport=self.config.transport_id,
            engines=offered,
            startup_s=round(time.monotonic() - self.started_at, 3),
        )

    # ------------------------------------------------------------------ TransportHost

    def request_stop(self) -> None:
        """Begin a graceful shutdown (idempotent)."""
        self.stop_requested.set()

    def fatal(self, code: int, message: str) -> None:
        """Stop with a non-zero exit code."""
        if self.exit_code == EXIT_OK:
            self.exit_code = code
        log.error("supervisor.fatal", message=message, code=code)
        self.request_stop()

    # ------------------------------------------------------------------ control verbs

    def status(self) -> dict[str, Any]:
        """Snapshot for ``takopictl status``."""
        assert self.paths is not None
        helpers = []
        if self.spawner is not None:
            for name, proc in self.spawner.helper_processes():
                if proc.pid is not None and proc.exit is None:
                    helpers.append({"name": name, "pid": proc.pid})
        return {
            "pid": os.getpid(),
            "state": self.state,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "config_path": str(self.config.config_path),
            "transport": self.config.transport_id,
            "default_engine": self.routing.default_engine,
            "runtime_dir": str(self.paths.runtime_dir),
            "state_dir": str(self.paths.state_dir),
            "runs": len(self.registry.runs),
            "pending_deliveries": len(self.journal.pending()),
            "open_intakes": self.runs.intakes.count() if self.runs is not None else 0,
            "journal_errors": self.journal.write_errors,
            "journal_last_error": self.journal.last_error,
            "workers": self.workers.describe(),
            "engines": self.engines.describe(),
            "helpers": helpers,
        }

    async def restart(
        self, names: list[str], *, force: bool, wait_timeout: float = 600.0
    ) -> dict[str, Any]:
        """``takopictl restart`` (see :meth:`Restarter.restart`)."""
        return await self.restarter.restart(names, force=force, wait_timeout=wait_timeout)

    async def reload(self) -> dict[str, Any]:
        """Re-read the config and apply it (see :meth:`Reloader.reload`)."""
        assert self.reloader is not None
        return await self.reloader.reload()

    def worker_logs(self, name: str, lines: int) -> dict[str, Any]:
        """Recent output of one worker, or the supervisor's own log lines (``supervisor``)."""
        watcher = self.workers.get(name)
        if watcher is None and name == "supervisor":
            ring = self.log_ring
            return {
                "name": "supervisor",
                "pid": os.getpid(),
                "lines": ring.tail(lines) if ring is not None else [],
            }
        watcher = watcher or self.workers.find(name)
        if watcher is None:
            raise KeyError(name)
        proc = watcher.process
        return {
            "name": watcher.name,
            "pid": proc.pid if proc is not None else None,
            "lines": proc.tail(lines) if proc is not None else [],
        }

    def runs_info(self) -> dict[str, Any]:
        """Runs in flight and pending deliveries."""
        return {
            "runs": self.registry.describe(),
            "pending_deliveries": [d.to_dict() for d in self.journal.deliveries()],
        }

    def cancel_run(self, run_id: str) -> bool:
        """Cancel one run by id (from ``takopictl cancel``)."""
        return self.registry.cancel(run_id, OPERATOR_REASON)

    # ------------------------------------------------------------------ background tasks

    async def _refill_standby(self, delay: float = 0.0) -> None:
        if self.options.standby and self.spawner is not None:
            await self.spawner.refill_standby(
                delay, allowed=lambda: self.state in ("running", "reloading")
            )

    async def _setup_engines(self) -> None:
        """Decide which engines exist once the config is loaded; then the transport starts."""
        await self.config_loaded.wait()
        assert self.engine_setup is not None
        try:
            await self.engine_setup.decide()
            self.routing.build()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.fatal(EXIT_ERROR, str(exc))
            return
        self.engines.catalog.decided.set()
        self.maybe_notify_ready()
        trim_memory()  # start-up garbage (config parsing, probe answers) goes back to the OS

    async def _retire_idle(self) -> None:
        """Engine workers unused for ``engine_idle_s`` retire. The fork server and the spare
        are worth their memory until they have started an engine worker: they retire once one
        runs and nothing was started for ``helper_idle_s``, or when no engine worker ran for
        ``engine_idle_s``."""
        while True:
            engine_idle_s, helper_idle_s = self.options.engine_idle_s, self.options.helper_idle_s
            periods = [s for s in (engine_idle_s, helper_idle_s) if s > 0]
            await anyio.sleep(min(max(min(periods) / 4, 0.05), 5.0) if periods else 5.0)
            if self.state != "running" or self.spawner is None:
                continue
            if engine_idle_s > 0:
                self.engines.retire_idle(engine_idle_s)
            now = time.monotonic()
            engines_live = self.engines.live()
            done_starting = (
                engines_live
                and helper_idle_s > 0
                and now - self.spawner.last_start >= helper_idle_s
            )
            unused = (
                not engines_live
                and engine_idle_s > 0
                and now - max(self.engines.last_used(), self.started_at) >= engine_idle_s
            )
            if (done_starting or unused) and self.spawner.retire_helpers():
                trim_memory()

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await anyio.sleep(interval)

    async def _sweeper(self) -> None:
        while True:
            await anyio.sleep(1.0)
            self._sweep()

    async def _reload_on_signal(self) -> None:
        result = await self.reload()
        log.info(
            "supervisor.reloaded",
            **{k: v for k, v in result.items() if k != "reloaded"},
            ok=result.get("reloaded"),
        )

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    # In a task: a SIGTERM must not wait behind the engine probes.
                    self.spawn_task(self._reload_on_signal)
                else:
                    log.info("supervisor.signal", signal=signal.Signals(signum).name)
                    self.request_stop()

    # ------------------------------------------------------------------ main

    def _plan(self) -> tuple[EarlyPlan | None, list[str]]:
        """Load the config (or only its early plan) and the state dir; engine ids to run."""
        self.config.start_check()
        plan = self.config.early_plan()
        if plan is None:
            self.config.load()
            engine_ids = self.config.engine_ids()
        else:
            self.config.config_path, self.config.transport_id, engine_ids = plan
        self._assemble(resolve_paths(self.config.config_path))
        interrupted = self.journal.load()
        for entry in interrupted:
            log.warning(
                "run.interrupted",
                run_id=entry.run_id,
                engine=entry.engine,
                resume_line=entry.resume_line,
            )
        self._new_watcher("transport", self.config.transport_id)
        for extra in self.options.extra_transports:
            if extra != self.config.transport_id:
                self._new_watcher("transport", extra)
        if plan is None:
            self.config_loaded.set()
        return plan, engine_ids

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        from takopi.rpc import RouterEndpoint

        try:
            plan, _engine_ids = self._plan()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            log.error("supervisor.config_error", error=str(exc))
            return EXIT_ERROR
        assert self.paths is not None and self.spawner is not None
        subreaper = become_subreaper() if self.options.subreaper else False
        self.endpoint = RouterEndpoint(
            self.paths.rpc_address,
            authenticate=self.handshake.authenticate,
            on_peer=self.handshake.on_peer,
            on_peer_lost=self.handshake.on_peer_lost,
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
        self.spawner.start_zygote(self.options.zygote and subreaper)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.endpoint.serve)
                await tg.start(ControlServer(self.paths.control_socket, bind_verbs(self)).serve)
                if self.options.handle_signals:
                    tg.start_soon(self._signals)
                tg.start_soon(self._watchdog)
                assert self.reloader is not None
                tg.start_soon(self.reloader.watch_config)
                tg.start_soon(self._setup_engines)
                tg.start_soon(self._retire_idle)
                if self.options.subreaper:
                    tg.start_soon(self._sweeper)
                self.state = "running"
                self.notifier.status("starting workers")
                for watcher in self.workers:
                    watcher.start()
                # Workers are importing; validate the full config meanwhile.
                if plan is not None and not await self._finish_early_config(plan):
                    self.request_stop()
                tg.start_soon(self._refill_standby, 1.0)
                await self.stop_requested.wait()
                await self._shutdown()
                tg.cancel_scope.cancel()
        finally:
            await self._teardown()
        return self.exit_code

    async def _teardown(self) -> None:
        assert self.paths is not None
        if self.options.handle_signals:
            # The signal receiver is closed: a late SIGTERM must not kill the teardown.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if self.transports is not None:
            self.transports.release_lock()
        self.journal.close()
        try:
            if self.endpoint is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await self.endpoint.aclose()
        except Exception:
            pass
        try:
            self.paths.pid_file.unlink()
        except OSError:
            pass
        self.stopped.set()

    async def _finish_early_config(self, plan: EarlyPlan) -> bool:
        """Load the full settings after an early spawn; False (and an error) if unusable."""
        try:
            await anyio.to_thread.run_sync(self._load_full_config)
            engine_ids = self.config.engine_ids()
            if self.config.transport_id != plan[1] or engine_ids != plan[2]:
                # Cannot happen without env overrides (excluded); be loud if it does.
                raise ConfigError(
                    f"config changed while starting (transport {plan[1]!r} → "
                    f"{self.config.transport_id!r}, engines {plan[2]} → {engine_ids})"
                )
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            log.error("supervisor.config_error", error=str(exc))
            if self.exit_code == EXIT_OK:
                self.exit_code = EXIT_ERROR
            return False
        self.config_loaded.set()
        return True

    def _load_full_config(self) -> None:
        self.config.load()
        for watcher in self.workers:
            watcher.policy.config = self.options.policy

    async def _shutdown(self) -> None:
        log.info("supervisor.stopping", runs=len(self.registry.runs))
        self.state = "stopping"
        self.engines.stopping = True
        self.notifier.stopping()
        self.registry.accepting = False
        runs = self.runs
        assert runs is not None
        if self.registry.runs:
            with anyio.move_on_after(self.options.shutdown_grace):
                await runs.idle.wait()
        if self.registry.runs:
            count = self.registry.cancel_all(SHUTDOWN_REASON)
            log.warning("supervisor.cancelling_runs", count=count)
            with anyio.move_on_after(5):
                await runs.idle.wait()
            await anyio.sleep(0.2)  # let the terminal replies reach the transport
        if self.spawner is not None:
            self.spawner.close()
        for kind in KIND_ORDER:
            async with anyio.create_task_group() as tg:
                for watcher in self.workers.of_kind(kind):
                    tg.start_soon(watcher.stop)
        for watcher in self.workers:
            watcher.mark_stopped()
        runs.stopped()  # messages the transports took but never ran: journaled, not lost
        if self.options.subreaper:
            Reaper(self.known_pids).sweep()
        log.info("supervisor.stopped", exit_code=self.exit_code)


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


__all__ = ["Arbiter", "RestartRefused", "SupervisorOptions", "run_supervisor"]
