"""A fork server for workers: one process imports the worker stack once, then forks a worker
per request (ARCHITECTURE §1: workers stay separate processes; they only share the imported
code copy-on-write). Saves the interpreter start-up and import time of every spawn and restart,
and most of each idle worker's private memory.

Protocol (SEQPACKET socketpair, the zygote's end passed as ``--secret-fd``): the zygote sends
``{"ready": true}`` once imported; the supervisor sends ``{"endpoint", "kind", "id",
"identity", "secret"}`` with one file descriptor (the write end of the worker's output
pipe) or three (stdin, stdout, stderr); the zygote answers ``{"pid": N}`` (0 on failure). The
zygote itself knows no config, so it can be started before the supervisor has read one
(:mod:`takopi.supervisor.early`). It never sees a plugin's settings or secrets either: it runs
with the credential-free start environment, and every worker gets its own environment from the
supervisor in the handshake (:mod:`takopi.supervisor.worker_env`), after the fork — so nothing
a transport needs can linger in the zygote's memory and be inherited by a later engine worker. Workers are double-forked so they are re-parented to the
supervisor (a child subreaper), which reaps them and reads their exit codes. Only workers on
the supervisor's own interpreter use it (not plugins configured with another ``python``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import IO, Any

import anyio

from takopi.logging import get_logger
from takopi.supervisor.early import ForkedPopen, spawn_zygote_process, take_early
from takopi.supervisor.process import EntryPointHint, WorkerProcess
from takopi.supervisor.worker_env import start_env

log = get_logger(__name__)


class Zygote:
    """Supervisor-side handle of the fork server."""

    def __init__(self, rpc_address: str, *, echo: IO[bytes] | None) -> None:
        self._rpc_address = rpc_address
        self._echo = echo
        self.process: WorkerProcess | None = None
        self._sock: socket.socket | None = None
        self.ready = False
        self.in_flight = 0
        self._lock = anyio.Lock()

    @property
    def alive(self) -> bool:
        """The fork server process is running."""
        proc = self.process
        return proc is not None and proc.popen is not None and proc.popen.poll() is None

    def start(self) -> None:
        """Adopt the fork server started before our imports, or spawn one (it becomes ready
        once its imports are done)."""
        spawned = take_early()
        early = spawned is not None
        if spawned is None:
            spawned = spawn_zygote_process(start_env(os.environ))
        forked = isinstance(spawned.popen, ForkedPopen)
        log.info("zygote.started", pid=spawned.popen.pid, early=early, forked=forked)
        self._sock = spawned.sock
        self.process = WorkerProcess.from_popen(spawned.popen, name="zygote", echo=self._echo)
        self.ready = False

    async def _recv(self, timeout: float) -> dict[str, Any] | None:
        sock = self._sock
        if sock is None:
            return None
        with anyio.move_on_after(timeout):
            while True:
                await anyio.wait_readable(sock)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    return None
                if not data:
                    return None
                try:
                    value = json.loads(data)
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
        return None

    async def wait_ready(self, timeout: float) -> bool:
        """Wait for the fork server's imports to finish."""
        if self.ready:
            return True
        async with self._lock:
            if not self.ready and self.alive:
                answer = await self._recv(timeout)
                self.ready = bool(answer and answer.get("ready"))
        return self.ready

    async def fork(
        self,
        *,
        name: str,
        kind: str,
        plugin_id: str,
        identity: str,
        secret: str,
        timeout: float = 5.0,
        inherit_stdio: bool = False,
        stdio: tuple[int, int] | None = None,
        entrypoint: EntryPointHint | None = None,
    ) -> WorkerProcess | None:
        """A new worker for a slot, or None (then spawn one the ordinary way).

        ``inherit_stdio``: the worker gets the supervisor's stdin/stdout (a transport on the
        terminal) and only its stderr is captured; ``stdio``: it gets these two descriptors
        as stdin/stdout instead (the engine probe's pipes)."""
        if not self.alive or not await self.wait_ready(timeout):
            return None
        assert self._sock is not None
        read_fd, write_fd = os.pipe()
        if stdio is not None:
            fds = [stdio[0], stdio[1], write_fd]
        else:
            fds = [0, 1, write_fd] if inherit_stdio else [write_fd]
        request = {
            "endpoint": self._rpc_address,
            "kind": kind,
            "id": plugin_id,
            "identity": identity,
            "secret": secret,
        }
        if entrypoint is not None:
            request.update(entrypoint.to_json())
        payload = json.dumps(request)
        self.in_flight += 1
        try:
            async with self._lock:
                try:
                    if self._sock is None:
                        raise OSError("fork server closed")
                    socket.send_fds(self._sock, [payload.encode()], fds)
                except OSError as exc:
                    log.warning("zygote.send_failed", error=str(exc))
                    os.close(read_fd)
                    return None
                finally:
                    os.close(write_fd)
                answer = await self._recv(timeout)
                if answer is None:
                    # Its answer may still come and would be read as the next fork's: this
                    # fork server is done (the next spawn starts another one).
                    log.warning("zygote.unanswered", worker=name, timeout=timeout)
                    self.close()
            pid = int((answer or {}).get("pid") or 0)
            if pid <= 0:
                os.close(read_fd)
                return None
            try:
                return WorkerProcess.adopt(pid, read_fd, name=name, echo=self._echo)
            except OSError as exc:  # already gone: report through an ordinary spawn
                log.warning("zygote.adopt_failed", pid=pid, error=str(exc))
                with contextlib.suppress(OSError):
                    os.close(read_fd)
                return None
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        """Stop the fork server (its workers are unaffected: they are not its children)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.process is not None:
            self.process.discard()
        self.ready = False


__all__ = ["Zygote"]
