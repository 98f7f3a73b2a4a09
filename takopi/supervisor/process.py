"""One worker OS process: spawn with a one-time secret, exit detection by pidfd, output ring
buffer (for ``takopictl logs``), and kill.

The secret travels over an inherited pipe (``--secret-fd N``), never argv or the environment.
Workers get their own session (``setsid``) so a terminal's Ctrl-C reaches only the supervisor,
which then stops them in order; a session leader can still read an inherited tty (console).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

import anyio
import psutil

from takopi.logging import get_logger
from takopi.supervisor.worker_env import worker_command

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a process ended, Popen style: ``returncode < 0`` means killed by signal ``-rc``."""

    returncode: int

    @property
    def signal(self) -> int | None:
        """The terminating signal number, if any."""
        return -self.returncode if self.returncode < 0 else None

    def describe(self) -> str:
        """``exit code 3`` or ``killed by SIGKILL``."""
        sig = self.signal
        if sig is not None:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            return f"killed by {name}"
        return f"exit code {self.returncode}"


class WorkerProcess:
    """Spawns and watches one worker process."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        secret: bytes,
        env: dict[str, str] | None = None,
        inherit_stdio: bool = False,
        log_lines: int = 1000,
        echo: IO[bytes] | None = None,
        standby: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self._secret = secret
        self._env = env
        self._inherit_stdio = inherit_stdio
        self.output: deque[str] = deque(maxlen=log_lines)
        self._echo = echo
        self.popen: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        self._adopted_streams: list[IO[bytes]] = []
        self.pidfd: int | None = None
        self.exit: ExitInfo | None = None
        self.started_at: float | None = None
        self.exited = anyio.Event()
        self._descendants: set[int] = set()
        self.standby = standby
        self._assign_fd: int | None = None

    @property
    def pid(self) -> int | None:
        """The OS pid once spawned."""
        if self.popen is not None:
            return self.popen.pid
        return self._adopted_pid

    def spawn(self) -> None:
        """Start the process; the argv must accept ``--secret-fd`` (appended here)."""
        read_fd, write_fd = os.pipe()
        try:
            argv = [*self.argv, "--secret-fd", str(read_fd)]
            popen = subprocess.Popen(
                argv,
                stdin=None if self._inherit_stdio else subprocess.DEVNULL,
                stdout=None if self._inherit_stdio else subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(read_fd,),
                env=self._env,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(read_fd)
        self._attach(popen)
        if self.standby:
            self._assign_fd = write_fd  # the assignment is written later by assign()
        else:
            try:
                os.write(write_fd, self._secret + b"\n")
            except OSError:
                pass  # died at once; exit detection reports it
            finally:
                os.close(write_fd)

    def _attach(self, popen: subprocess.Popen[bytes]) -> None:
        """Start watching ``popen``: pidfd, non-blocking output pipes."""
        self.popen = popen
        self.started_at = time.monotonic()
        self.pidfd = os.pidfd_open(popen.pid)
        for stream in (popen.stderr, popen.stdout):
            if stream is not None:
                os.set_blocking(stream.fileno(), False)
        log.debug("worker.spawned", worker=self.name, pid=popen.pid)

    @classmethod
    def from_popen(
        cls, popen: subprocess.Popen[bytes], *, name: str, echo: IO[bytes] | None = None
    ) -> WorkerProcess:
        """Watch a process spawned elsewhere (the zygote); any piped output is read as usual."""
        proc = cls(list(popen.args) if isinstance(popen.args, list) else [], name=name, secret=b"")
        proc._echo = echo
        proc._attach(popen)
        return proc

    @classmethod
    def adopt(
        cls,
        pid: int,
        output_fd: int,
        *,
        name: str,
        log_lines: int = 1000,
        echo: IO[bytes] | None = None,
    ) -> WorkerProcess:
        """Wrap a worker forked by the zygote (re-parented to us, the subreaper); its
        stdout+stderr arrive on ``output_fd``."""
        proc = cls([], name=name, secret=b"", log_lines=log_lines, echo=echo)
        proc._adopted_pid = pid
        os.set_blocking(output_fd, False)
        proc._adopted_streams = [os.fdopen(output_fd, "rb", buffering=0)]
        proc.started_at = time.monotonic()
        proc.pidfd = os.pidfd_open(pid)
        return proc

    def _streams(self) -> list[IO[bytes]]:
        if self.popen is not None:
            return [s for s in (self.popen.stderr, self.popen.stdout) if s is not None]
        return list(self._adopted_streams)

    def _reap(self) -> int:
        if self.popen is not None:
            return self.popen.wait()
        assert self._adopted_pid is not None
        try:
            _pid, status = os.waitpid(self._adopted_pid, 0)
        except ChildProcessError:
            return 255  # not our child (no subreaper): the status is lost
        return os.waitstatus_to_exitcode(status)

    def assign(
        self,
        *,
        name: str,
        kind: str,
        plugin_id: str,
        identity: str,
        secret: bytes,
        entrypoint: EntryPointHint | None = None,
    ) -> bool:
        """Hand a standby process its slot; False if it is gone (spawn a fresh one then)."""
        import json

        if not self.standby or self._assign_fd is None or self.popen is None:
            return False
        if self.popen.poll() is not None:
            self.discard()
            return False
        assignment = {
            "kind": kind,
            "id": plugin_id,
            "identity": identity,
            "secret": secret.decode(),
        }
        if entrypoint is not None:
            assignment.update(entrypoint.to_json())
        payload = json.dumps(assignment)
        try:
            os.write(self._assign_fd, payload.encode() + b"\n")
        except OSError:
            self.discard()
            return False
        finally:
            if self._assign_fd is not None:
                os.close(self._assign_fd)
                self._assign_fd = None
        self.name = name
        self.standby = False
        self.started_at = time.monotonic()
        return True

    def discard(self) -> None:
        """Kill an unused standby and reap it."""
        if self._assign_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._assign_fd)
            self._assign_fd = None
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(OSError):
                self.popen.kill()
            with contextlib.suppress(Exception):
                self.popen.wait(2)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.popen is not None:
            self._close_pipes()

    async def watch(self, on_exit: Callable[[WorkerProcess], None] | None = None) -> ExitInfo:
        """Pump output and wait for the exit (pidfd); run in a task. Reaps the process."""
        assert self.pidfd is not None
        async with anyio.create_task_group() as tg:
            for stream in self._streams():
                tg.start_soon(self._pump, stream)
            try:
                await anyio.wait_readable(self.pidfd)
            finally:
                # Output still in the pipe after exit is drained by the pumps (EOF ends them),
                # unless a leftover descendant keeps the pipe open: stop pumping then.
                with anyio.move_on_after(0.5):
                    while not self._pipes_closed():
                        await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        rc = self._reap()
        os.close(self.pidfd)
        self.pidfd = None
        self.exit = ExitInfo(rc)
        self._close_pipes()
        self.exited.set()
        if on_exit is not None:
            on_exit(self)
        return self.exit

    def release(self) -> None:
        """Give up on a process that outlived every wait (its :meth:`watch` cancelled): SIGKILL
        it, close the pidfd and the output pipes, and reap it from a background thread once it
        is gone. Without that, a forked process (adopted, so no :class:`subprocess.Popen`
        reaps it) would stay a zombie until the reaper's next sweep, or for good where no
        sweep runs."""
        self.kill()
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
        self._close_pipes()
        if self.pid is not None and self.exit is None:
            # Blocking on this one pid (never -1): a status that is not ours is never taken.
            threading.Thread(target=self._reap_quietly, name="reap-released", daemon=True).start()

    def _reap_quietly(self) -> None:
        with contextlib.suppress(Exception):  # reaped by the sweep already: nothing to do
            self._reap()

    def _pipes_closed(self) -> bool:
        return all(s.closed for s in self._streams())

    def _close_pipes(self) -> None:
        for stream in self._streams():
            if not stream.closed:
                stream.close()

    async def _pump(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        partial = b""
        while True:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if partial:
                    self._line(partial)
                stream.close()
                return
            if self._echo is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._echo.write(chunk)
                    self._echo.flush()
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for line in lines:
                self._line(line)
            if len(partial) > 65536:
                self._line(partial)
                partial = b""

    def _line(self, raw: bytes) -> None:
        self.output.append(raw.decode("utf-8", "replace").rstrip("\r"))

    def tail(self, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the worker's stdout/stderr."""
        if lines <= 0:
            return []
        return list(self.output)[-lines:]

    def remember_descendants(self) -> None:
        """Snapshot the worker's descendants so they can be killed after it is gone."""
        if self.pid is None or self.exit is not None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.add(child.pid)

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the worker (not its descendants); False if already gone."""
        if self.pid is None or self.exit is not None:
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    async def stop(self, grace: float = 3.0) -> ExitInfo | None:
        """SIGTERM, wait ``grace`` seconds, SIGKILL; then kill whatever it left behind."""
        self.remember_descendants()
        if self.signal(signal.SIGTERM):
            with anyio.move_on_after(grace):
                await self.exited.wait()
        if self.exit is None:
            self.signal(signal.SIGKILL)
            if self.signal(signal.SIGCONT) is False:
                pass
            with anyio.move_on_after(5.0):
                await self.exited.wait()
        self.kill_leftovers()
        return self.exit

    def kill(self) -> None:
        """SIGKILL now (plus a SIGCONT so a stopped process dies at once)."""
        self.remember_descendants()
        self.signal(signal.SIGKILL)
        self.signal(signal.SIGCONT)

    def kill_leftovers(self) -> int:
        """SIGKILL every remembered descendant still alive (and its process group)."""
        return kill_pids(self._descendants, exclude={os.getpid()})


def kill_pids(pids: set[int] | Sequence[int], *, exclude: set[int] | None = None) -> int:
    """SIGKILL each live pid, its process group (if it leads one) and its descendants."""
    exclude = exclude or set()
    killed = 0
    targets: set[int] = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            targets.add(pid)
            targets.update(c.pid for c in proc.children(recursive=True))
    own_pgid = os.getpgid(0)
    for pid in targets - exclude:
        with contextlib.suppress(OSError):
            pgid = os.getpgid(pid)
            if pgid == pid and pgid != own_pgid:
                os.killpg(pgid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


@dataclass(frozen=True, slots=True)
class EntryPointHint:
    """The entry point the supervisor found for a worker's plugin in its own interpreter: the
    worker imports ``value`` without reading every distribution's metadata."""

    value: str
    distribution: str | None

    def to_json(self) -> dict[str, str]:
        """The ``entrypoint``/``distribution`` keys of a fork request or standby assignment."""
        hint = {"entrypoint": self.value}
        if self.distribution is not None:
            hint["distribution"] = self.distribution
        return hint

    def to_argv(self) -> list[str]:
        """The ``--entrypoint``/``--distribution`` options of a fresh worker."""
        argv = ["--entrypoint", self.value]
        if self.distribution is not None:
            argv += ["--distribution", self.distribution]
        return argv


def worker_argv(
    python: str | None,
    *,
    kind: str,
    plugin_id: str,
    endpoint: str,
    identity: str,
    entrypoint: EntryPointHint | None = None,
) -> list[str]:
    """``<python> -P -m takopi.worker --kind K --id X --endpoint E --identity I
    [--entrypoint V [--distribution D]]``."""
    hint = entrypoint.to_argv() if entrypoint is not None else []
    return [
        *worker_command(python),
        "--kind",
        kind,
        "--id",
        plugin_id,
        "--endpoint",
        endpoint,
        "--identity",
        identity,
        *hint,
    ]


__all__ = ["EntryPointHint", "ExitInfo", "WorkerProcess", "kill_pids", "worker_argv"]
