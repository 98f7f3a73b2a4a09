"""Transport worker: hosts one ``TransportBackend``.

Supervisor → worker methods (messages in :mod:`takopi.protocol`):

- ``load(TransportLoad)`` → ``TransportLoaded`` (with the plugin's ``lock_token``) or
  ``LoadFailed``.
- ``check_setup(SetupCheck)`` → ``SetupReport`` (an ``EngineBackend`` is built from the
  check's ``EngineDescription``).
- ``start(TransportStart)`` → ``TransportStarted``: runs ``build_and_run`` on a thread with no
  running event loop, with a :class:`RuntimeProxy`.
- notification ``runtime.changed(RuntimeSnapshot)``.

When ``build_and_run`` returns the worker exits 0; when it raises, 1 (traceback on stderr).

On SIGTERM (:meth:`TransportHost.shutdown`) the plugin gets up to :data:`STOP_GRACE` seconds to
deliver what it owes: the worker waits until the tasks that consumed runs or commands (and
sent their replies) are done, then cancels the plugin loop's root task as Ctrl-C would, and
waits briefly for ``build_and_run`` to return (exit 0).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.protocol import (
    LoadFailed,
    RuntimeSnapshot,
    SetupCheck,
    SetupProblem,
    SetupReport,
    TransportLoad,
    TransportLoaded,
    TransportStart,
    TransportStarted,
)
from takopi.settings_view import ValidatedTable
from takopi.worker.codes import EX_CONFIG, EXIT_CRASHED, EXIT_OK, EXIT_PLUGIN_FAILED
from takopi.worker.foreign_deliveries import ForeignDeliveries, is_third_party
from takopi.worker.proxies import (
    RuntimeProxy,
    Snapshot,
    make_command_lister,
    make_command_resolver,
)

if TYPE_CHECKING:
    from takopi.rpc import Peer

log = get_logger(__name__)

STOP_GRACE = 5.0
"""Seconds a stopping transport gets to deliver final messages (the supervisor waits longer)."""
LOOP_STOP_WAIT = 1.0
"""Seconds ``build_and_run`` gets to return once its loop was asked to stop."""
OPEN_RUN_WAIT = 1.5
"""Seconds a run without its terminal event yet is waited for (it may be on its way)."""


def _unavailable_runner(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("engines run in their own worker processes")


class TransportHost:
    """Loads the transport plugin and runs it on its own thread."""

    kind = "transport"

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.backend: Any = None
        self.transport_config: dict[str, Any] = {}
        self.config_path = Path("takopi.toml")
        self.exit_code: int | None = None
        self.snapshot = Snapshot(RuntimeSnapshot())
        self.peer: Peer | None = None
        self.thread: threading.Thread | None = None
        self.on_finished: Callable[[int], None] | None = None
        self.stopping = False

    def register(self, peer: Peer) -> None:
        """Install this host's RPC handlers on ``peer``."""
        self.peer = peer
        peer.register("load", self.load)
        peer.register("check_setup", self.check_setup)
        peer.register("start", self.start)
        peer.register("runtime.changed", self.runtime_changed)

    async def load(self, request: TransportLoad) -> TransportLoaded | LoadFailed:
        """Import the backend and compute its lock token."""
        from takopi.transports import get_transport

        table = request.transport_config
        self.transport_config = ValidatedTable(table) if request.validated else dict(table)
        config_path = request.config_path
        self.config_path = Path(config_path) if config_path else Path.cwd() / "takopi.toml"
        try:
            self.backend = get_transport(self.plugin_id)
        except ConfigError as exc:
            return self._failed(str(exc), EXIT_PLUGIN_FAILED)
        try:
            try:
                token = self.backend.lock_token(
                    transport_config=self.transport_config, _config_path=self.config_path
                )
            except TypeError:
                token = self.backend.lock_token(
                    transport_config=self.transport_config, config_path=self.config_path
                )
        except ConfigError as exc:
            return self._failed(str(exc), EX_CONFIG)
        except Exception as exc:
            return self._failed(
                f"lock_token failed: {type(exc).__name__}: {exc}", EXIT_PLUGIN_FAILED
            )
        from takopi.utils.memory import trim_memory

        trim_memory()
        description = getattr(self.backend, "description", "")
        return TransportLoaded(
            lock_token=None if token is None else str(token),
            description=description if isinstance(description, str) else "",
        )

    def _failed(self, error: str, code: int) -> LoadFailed:
        log.error("worker.failed", transport=self.plugin_id, error=error)
        self.exit_code = code
        return LoadFailed(error=error, exit_code=code)

    async def check_setup(self, request: SetupCheck) -> SetupReport:
        """Run the plugin's ``check_setup`` against a description of the default engine."""
        from takopi.backends import EngineBackend

        engine = request.engine
        backend = EngineBackend(
            id=engine.id or "codex",
            build_runner=_unavailable_runner,
            cli_cmd=engine.cli_cmd,
            install_cmd=engine.install_cmd,
        )
        try:
            result = self.backend.check_setup(
                backend, transport_override=request.transport_override
            )
        except Exception as exc:
            title = f"check_setup failed: {type(exc).__name__}: {exc}"
            return SetupReport(issues=(SetupProblem(title=title),))
        issues = getattr(result, "issues", None) or []
        return SetupReport(
            issues=tuple(
                SetupProblem(
                    title=str(getattr(i, "title", i)),
                    lines=tuple(str(line) for line in getattr(i, "lines", ()) or ()),
                )
                for i in issues
            )
        )

    async def runtime_changed(self, snapshot: RuntimeSnapshot) -> None:
        """The supervisor's engines/config changed."""
        self.snapshot.update(snapshot)

    async def start(self, request: TransportStart) -> TransportStarted:
        """Start ``build_and_run`` on a fresh thread (no running event loop there)."""
        from takopi.commands import set_command_lister, set_command_resolver

        if self.thread is not None:
            return TransportStarted(started=False, error="already started")
        assert self.peer is not None
        self.snapshot.update(request.snapshot)
        final_notify = request.final_notify
        default_engine_override = request.default_engine_override
        runtime = RuntimeProxy(self.peer, self.snapshot)
        # Commands run in their own workers, possibly under another interpreter: both the
        # lookup and the listing go through the supervisor.
        set_command_resolver(make_command_resolver(self.peer))
        set_command_lister(make_command_lister(self.peer))
        if is_third_party(self.plugin_id):  # it cannot take journaled outcomes: we deliver
            ForeignDeliveries(runtime, lambda: self.thread).install()

        def target() -> None:
            code = EXIT_OK
            try:
                self.backend.build_and_run(
                    transport_config=self.transport_config,
                    config_path=self.config_path,
                    runtime=runtime,
                    final_notify=final_notify,
                    default_engine_override=default_engine_override,
                )
                log.info("transport.finished", transport=self.plugin_id)
            except ConfigError as exc:
                log.error("transport.config_error", transport=self.plugin_id, error=str(exc))
                code = EX_CONFIG
            except BaseException as exc:
                if self.stopping:  # we cancelled its loop: a clean stop
                    log.info("transport.stopped", transport=self.plugin_id)
                    code = EXIT_OK
                    self.exit_code = code
                    if self.on_finished is not None:
                        self.on_finished(code)
                    return
                traceback.print_exc()
                log.error(
                    "transport.crashed",
                    transport=self.plugin_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                code = EXIT_CRASHED
            self.exit_code = code
            if self.on_finished is not None:
                self.on_finished(code)

        self.thread = threading.Thread(
            target=target, name=f"transport-{self.plugin_id}", daemon=True
        )
        self.thread.start()
        # The plugin's imports happen on its thread: give freed heap back once it settled.
        from takopi.utils.memory import trim_memory

        timer = threading.Timer(3.0, trim_memory)
        timer.daemon = True
        timer.start()
        return TransportStarted(started=True)

    async def shutdown(self, grace: float = STOP_GRACE) -> None:
        """Let the plugin deliver its pending replies, then stop its loop (all bounded)."""
        import anyio

        from takopi.worker.drain import TRACKER

        self.stopping = True
        thread = self.thread
        if thread is None or not thread.is_alive():
            return
        TRACKER.stopping = True
        started = time.monotonic()
        deadline = started + grace
        busy = TRACKER.busy()
        log.info("transport.stopping", transport=self.plugin_id, busy=busy)
        while busy and time.monotonic() < deadline and not (self.peer is None or self.peer.closed):
            await anyio.sleep(0.05)
            busy = TRACKER.busy(include_open=time.monotonic() - started < OPEN_RUN_WAIT)
        if busy:
            log.warning("transport.stop_grace_over", transport=self.plugin_id, busy=busy)
        if TRACKER.stop_loop():
            until = time.monotonic() + LOOP_STOP_WAIT
            while thread.is_alive() and time.monotonic() < until:
                await anyio.sleep(0.02)


__all__ = ["LOOP_STOP_WAIT", "OPEN_RUN_WAIT", "STOP_GRACE", "TransportHost"]
