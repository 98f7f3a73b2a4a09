"""Transport workers: load the plugin, take the lockfile (main transport), check its setup,
start it; serve it the runtime, runs and commands. The main transport finishing on its own
stops the supervisor; its quarantine makes the supervisor exit non-zero."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

from takopi.logging import get_logger
from takopi.protocol import (
    EngineDescription,
    SetupCheck,
    SetupReport,
    TransportLoad,
    TransportLoaded,
    TransportStart,
)
from takopi.settings_view import VALIDATED_TRANSPORTS
from takopi.supervisor.kinds.engine import load_error
from takopi.supervisor.options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TRANSPORT_QUARANTINED,
    TRANSPORT_STOP_TIMEOUT,
)

if TYPE_CHECKING:
    from takopi.lockfile import LockHandle
    from takopi.rpc import Peer
    from takopi.supervisor.config import SupervisorConfig
    from takopi.supervisor.engine_pool import EnginePool
    from takopi.supervisor.kinds.command import CommandRelay
    from takopi.supervisor.routing import Routing
    from takopi.supervisor.runs import RunService
    from takopi.supervisor.runtime_service import RuntimeService
    from takopi.supervisor.watcher import Incarnation, Watcher

log = get_logger(__name__)


class TransportHost(Protocol):
    """What a transport's fate decides for the supervisor."""

    state: str
    exit_code: int

    def fatal(self, code: int, message: str) -> None: ...

    def request_stop(self) -> None: ...


class TransportKind:
    """The chat transport(s): hosts ``handle_message`` and the plugin's own loop."""

    name = "transport"
    stop_timeout = TRANSPORT_STOP_TIMEOUT
    inherit_stdio = True

    def __init__(
        self,
        *,
        host: TransportHost,
        config: SupervisorConfig,
        routing: Routing,
        engines: EnginePool,
        runtime_service: RuntimeService,
        runs: RunService,
        commands: CommandRelay,
    ) -> None:
        self._host = host
        self._config = config
        self._routing = routing
        self._engines = engines
        self._runtime_service = runtime_service
        self._runs = runs
        self._commands = commands
        self.lock: LockHandle | None = None
        """The lockfile of the main transport's token, once taken."""

    def _primary(self, watcher: Watcher) -> bool:
        return watcher.plugin_id == self._config.transport_id

    def register(self, watcher: Watcher, peer: Peer) -> None:
        """Serve the runtime, runs and command relay to the transport."""
        self._runtime_service.register(peer, transport=watcher.plugin_id)
        self._runs.register(peer, transport=watcher.plugin_id)
        peer.register("command.describe", self._commands.describe)
        peer.register("command.handle", self._commands.handle)

    async def before_load(self, watcher: Watcher) -> None:
        """Which engines exist is decided before a transport starts (its startup message and
        menu must not depend on timing)."""
        await self._engines.catalog.decided.wait()

    async def load(self, watcher: Watcher, peer: Peer) -> bool:
        """Load, lock, check the setup against the default engine, start."""
        config = self._config
        options = config.options
        table = config.settings.transport_config(watcher.plugin_id, config_path=config.config_path)
        result = await peer.call(
            "load",
            TransportLoad(
                transport_config=dict(table),
                config_path=str(config.config_path),
                validated=watcher.plugin_id in VALIDATED_TRANSPORTS,
            ),
        )
        if not isinstance(result, TransportLoaded):
            return watcher.fail_load(load_error(result))
        watcher.description = result.description
        if self._primary(watcher) and self.lock is None and not self._take_lock(result.lock_token):
            return False
        setup: SetupReport = await peer.call(
            "check_setup",
            SetupCheck(
                engine=self._default_engine(), transport_override=options.transport_override
            ),
        )
        for issue in setup.issues:
            title = issue.title
            if title.startswith("install "):
                log.warning("setup.warning", transport=config.transport_id, issue=title)
                continue
            message = f"error: {title}"
            print(message, file=sys.stderr)
            log.error("setup.failed", transport=config.transport_id, issue=title)
            watcher.last_error = title
            self._host.fatal(EXIT_ERROR, message)
            return False
        self._routing.build()
        await peer.call(
            "start",
            TransportStart(
                snapshot=self._routing.snapshot(),
                final_notify=options.final_notify,
                default_engine_override=options.default_engine_override,
            ),
        )
        return True

    def _take_lock(self, token: str | None) -> bool:
        from takopi.lockfile import LockError, acquire_lock

        try:
            self.lock = acquire_lock(self._config.config_path, token)
        except LockError as exc:
            message = f"error: already running ({exc.hint})"
            print(message, file=sys.stderr)
            log.error("supervisor.lock_held", path=str(exc.path), pid=exc.pid)
            self._host.fatal(EXIT_ERROR, message)
            return False
        return True

    def _default_engine(self) -> EngineDescription:
        """``check_setup`` wants the default engine's description (as the probe found it)."""
        engine_id = self._routing.default_engine
        loaded = self._engines.catalog.loaded(engine_id)
        return EngineDescription(
            id=engine_id,
            cli_cmd=loaded.cli_cmd if loaded is not None else None,
            install_cmd=loaded.install_cmd if loaded is not None else None,
        )

    async def on_ready(self, watcher: Watcher) -> None:
        """Nothing else waits on a transport (startup readiness asks the arbiter)."""

    async def on_gave_up(self, watcher: Watcher, reason: str) -> None:
        """The main transport is gone for good: exit non-zero so systemd restarts us."""
        if not self._primary(watcher):
            return
        message = f"error: transport {watcher.plugin_id!r} {watcher.state.value}: {reason}"
        print(message, file=sys.stderr)
        host = self._host
        host.fatal(
            EXIT_TRANSPORT_QUARANTINED if host.exit_code == EXIT_OK else host.exit_code, message
        )

    def on_exit(self, watcher: Watcher, incarnation: Incarnation) -> None:
        """Messages it took but never ran are owed a reply; the main transport finished on
        its own (e.g. console at end of input): stop."""
        self._runs.transport_lost(watcher.plugin_id)
        proc = incarnation.process
        if (
            self._primary(watcher)
            and proc is not None
            and proc.exit is not None
            and proc.exit.returncode == 0
            and incarnation.ready_at is not None
            and self._host.state == "running"
            and not watcher.manual_restart  # `takopictl restart` stops it with SIGTERM
        ):
            log.info("transport.finished", transport=watcher.plugin_id)
            self._host.request_stop()

    def release_lock(self) -> None:
        """Give the lockfile back (at exit)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


__all__ = ["TransportHost", "TransportKind"]
