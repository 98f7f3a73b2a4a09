"""Where worker processes come from: forked by the fork server (zygote), handed the warm
standby spare, or started fresh; plus the environment each kind of worker gets.

Only workers on the supervisor's own interpreter can be forked or take the spare; a plugin
with its own ``python`` always gets a fresh process. The one-time secret of each spawn reaches
the worker over an inherited pipe or the fork request, never argv or the environment.

The helpers make start-up and the first start of an engine worker fast, and a forked worker
shares its imports with the supervisor. Once an engine worker runs and nothing was started for
a while they cost more memory than they save (the fork server's pages diverge from the
supervisor's and the workers' as each of them runs, ~7 MiB with one engine; a worker forked
earlier keeps sharing its imports with the supervisor without it):
:meth:`Spawner.retire_helpers` stops them for good, and workers are started fresh from then on.
Every process is started with the same credential-free environment
(:func:`~takopi.supervisor.worker_env.start_env` plus ``TAKOPI_CONFIG_PATH``), however it is
made; the rest of a worker's environment comes with its handshake (see
:class:`~takopi.supervisor.handshake.Handshake`), so the zygote and the spare never hold
another worker's secrets.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio

from takopi.config import CONFIG_PATH_ENV
from takopi.logging import get_logger
from takopi.supervisor.early import discard_early
from takopi.supervisor.process import EntryPointHint, ExitInfo, WorkerProcess, worker_argv
from takopi.supervisor.worker_env import start_env, worker_command
from takopi.supervisor.zygote import Zygote

if TYPE_CHECKING:
    from takopi.supervisor.watcher import Incarnation, Watcher

log = get_logger(__name__)


class Spawner:
    """Starts worker processes for watchers; owns the fork server and the standby spare."""

    def __init__(
        self,
        *,
        rpc_address: str,
        config_path: Path,
        echo: IO[bytes] | None,
        fork_timeout: float = 10.0,
    ) -> None:
        self.rpc_address = rpc_address
        self.config_path = config_path
        self.echo = echo
        self.fork_timeout = fork_timeout
        self.zygote: Zygote | None = None
        self.standby: WorkerProcess | None = None
        self.helpers_retired = False
        """The helpers were stopped for idleness: workers start fresh from now on."""
        self.last_start = time.monotonic()
        """When a worker or a probe was last started (the helpers' idle clock)."""
        self.on_standby_used: Callable[[], None] | None = None
        """Called when the spare was handed to a worker (the owner schedules a new one)."""

    # ------------------------------------------------------------------ helpers' lifecycle

    def start_zygote(self, enabled: bool) -> None:
        """Adopt or start the fork server (``enabled``: zygote on and we are a subreaper);
        otherwise discard a fork server started early for nothing."""
        if not enabled:
            if discard_early():
                log.info("zygote.early_discarded", reason="zygote off or no subreaper")
            return
        self.zygote = Zygote(self.rpc_address, echo=self.echo)
        try:
            self.zygote.start()
        except OSError as exc:
            log.warning("zygote.start_failed", error=str(exc))
            self.zygote = None

    def retire_helpers(self) -> bool:
        """Stop the fork server and the spare for good, their work done (workers are
        unaffected); False if there was nothing to stop or a fork is in flight."""
        if self.forking or (self.zygote is None and self.standby is None):
            return False
        self.close()
        self.zygote = None
        self.helpers_retired = True
        log.info("spawner.helpers_retired")
        return True

    def close(self) -> None:
        """Stop the helpers (workers are unaffected)."""
        if self.standby is not None:
            self.standby.discard()
            self.standby = None
        if self.zygote is not None:
            self.zygote.close()

    @property
    def forking(self) -> bool:
        """A fork is being adopted right now (the reaper must wait)."""
        return self.zygote is not None and self.zygote.in_flight > 0

    def helper_processes(self) -> list[tuple[str, WorkerProcess]]:
        """The fork server and the standby spare (they host no plugin)."""
        helpers: list[tuple[str, WorkerProcess]] = []
        if self.zygote is not None and self.zygote.process is not None:
            helpers.append(("zygote", self.zygote.process))
        if self.standby is not None:
            helpers.append(("standby", self.standby))
        return helpers

    # ------------------------------------------------------------------ environments

    def start_env(self) -> dict[str, str]:
        """The environment a fresh worker or the spare is executed with (no credentials)."""
        env = start_env(os.environ)
        env[CONFIG_PATH_ENV] = str(Path(self.config_path).absolute())
        return env

    # ------------------------------------------------------------------ spawning

    async def spawn(self, watcher: Watcher, incarnation: Incarnation) -> WorkerProcess:
        """A process for ``incarnation``: forked, the spare, or fresh (``OSError`` if none)."""
        self.last_start = time.monotonic()
        if self.zygote is not None and watcher.python is None:
            proc = await self._fork(watcher, incarnation)
            if proc is not None:
                return proc
            # A fork answered too late would still start a worker with this identity and
            # secret: the process started instead gets new ones.
            watcher.rekey(incarnation)
        proc = self._take_standby(watcher, incarnation)
        if proc is None:
            proc = self._spawn_fresh(watcher, incarnation)
        return proc

    async def start_probe(
        self, python: str | None, *, stdin: int, stdout: int, fork: bool = True
    ) -> WorkerProcess | None:
        """An engine probe (:mod:`takopi.worker.probe`) reading ``stdin`` and writing its
        answers to ``stdout``: forked by the fork server when it runs (takopi's own engines
        are imported there already), else started fresh (always with ``fork=False``). Its
        stderr is captured. None when the fork server gave no process: it may still fork one
        late onto these pipes, so the caller must not start another probe on them."""
        self.last_start = time.monotonic()
        if self.zygote is not None and python is None and fork:
            proc = await self.zygote.fork(
                name="probe",
                kind="probe",
                plugin_id="",
                identity="",
                secret="",
                timeout=self.fork_timeout,
                stdio=(stdin, stdout),
            )
            return proc
        argv = [*worker_command(python), "--probe"]
        argv += ["--supervisor-pid", str(os.getpid())]
        popen = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=self.start_env(),
            start_new_session=True,
            close_fds=True,
        )
        return WorkerProcess.from_popen(popen, name="probe", echo=self.echo)

    def _spawn_fresh(self, watcher: Watcher, incarnation: Incarnation) -> WorkerProcess:
        assert incarnation.secret is not None
        argv = worker_argv(
            watcher.python,
            kind=watcher.kind,
            plugin_id=watcher.plugin_id,
            endpoint=self.rpc_address,
            identity=incarnation.identity.decode(),
            entrypoint=self._entrypoint(watcher),
        )
        argv += ["--supervisor-pid", str(os.getpid())]
        proc = WorkerProcess(
            argv,
            name=watcher.name,
            secret=incarnation.secret.encode(),
            env=self.start_env(),
            inherit_stdio=watcher.behaviour.inherit_stdio,
            echo=self.echo,
        )
        proc.spawn()
        return proc

    async def _fork(self, watcher: Watcher, incarnation: Incarnation) -> WorkerProcess | None:
        """A worker forked by the fork server, or None (fall back to another way)."""
        zygote = self.zygote
        if zygote is None or watcher.python is not None:
            return None
        if not zygote.alive:
            self._replace_lost_zygote(zygote)
            return None
        assert incarnation.secret is not None
        proc = await zygote.fork(
            name=watcher.name,
            kind=watcher.kind,
            plugin_id=watcher.plugin_id,
            identity=incarnation.identity.decode(),
            secret=incarnation.secret,
            timeout=self.fork_timeout,
            inherit_stdio=watcher.behaviour.inherit_stdio,
            entrypoint=self._entrypoint(watcher),
        )
        if proc is None:
            log.warning("zygote.fork_failed", worker=watcher.name)
        return proc

    @staticmethod
    def _entrypoint(watcher: Watcher) -> EntryPointHint | None:
        """The entry point of the watcher's plugin in our interpreter (looked up at each
        start: a reinstalled plugin may have moved), which spares the worker reading every
        distribution's metadata; None for a plugin in another interpreter or not found (the
        worker looks for it itself and reports what is wrong)."""
        if watcher.python is not None:
            return None
        from takopi import plugins

        groups = {
            "engine": plugins.ENGINE_GROUP,
            "transport": plugins.TRANSPORT_GROUP,
            "command": plugins.COMMAND_GROUP,
        }
        try:
            ep = plugins.find_entrypoint(groups[watcher.kind], watcher.plugin_id)
        except (plugins.PluginNotFoundError, KeyError):
            return None
        return EntryPointHint(ep.value, ep.distribution)

    def _replace_lost_zygote(self, zygote: Zygote) -> None:
        proc = zygote.process
        if proc is None or proc.popen is None:
            return
        # Nothing watches the zygote's pidfd: its exit status is the Popen's.
        code = proc.popen.returncode
        log.warning("zygote.lost", exit=ExitInfo(code).describe() if code is not None else None)
        zygote.close()
        zygote.start()  # next spawns use it again; this one spawns fresh

    def _take_standby(self, watcher: Watcher, incarnation: Incarnation) -> WorkerProcess | None:
        """Hand the warm spare to ``watcher`` (same interpreter, not a transport)."""
        spare = self.standby
        if spare is None or watcher.python is not None or watcher.kind == "transport":
            return None
        self.standby = None
        assert incarnation.secret is not None
        if not spare.assign(
            name=watcher.name,
            kind=watcher.kind,
            plugin_id=watcher.plugin_id,
            identity=incarnation.identity.decode(),
            secret=incarnation.secret.encode(),
            entrypoint=self._entrypoint(watcher),
        ):
            return None
        if self.on_standby_used is not None:
            self.on_standby_used()
        return spare

    async def refill_standby(
        self, delay: float = 0.0, *, allowed: Callable[[], bool] | None = None
    ) -> None:
        """Start a new spare after ``delay`` unless the fork server makes it pointless;
        ``allowed()`` is asked again after the delay (the supervisor may be stopping)."""
        if self.standby is not None or (self.zygote is not None and self.zygote.alive):
            return
        if delay:
            await anyio.sleep(delay)
        if (
            self.standby is not None
            or self.helpers_retired
            or (allowed is not None and not allowed())
        ):
            return
        argv = [
            *worker_command(),
            "--standby",
            "--endpoint",
            self.rpc_address,
            "--supervisor-pid",
            str(os.getpid()),
        ]
        spare = WorkerProcess(
            argv,
            name="standby",
            secret=b"",
            env=self.start_env(),
            echo=self.echo,
            standby=True,
        )
        try:
            spare.spawn()
        except OSError as exc:
            log.warning("worker.standby_failed", error=str(exc))
            return
        self.standby = spare


__all__ = ["Spawner"]
