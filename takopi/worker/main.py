"""``python -m takopi.worker --kind engine|transport|command --id X --endpoint ipc://...
--identity I --secret-fd N``: host exactly one plugin for the supervisor.

The one-time secret is read from the inherited file descriptor ``--secret-fd`` (never argv or
the environment). The worker asks the kernel for SIGTERM when its parent dies, and on SIGTERM
kills every process it started (agent CLIs run in their own process groups) before exiting.
A transport worker whose supervisor is alive first gets a bounded grace to deliver its final
messages (:meth:`takopi.worker.transport.TransportHost.shutdown`); a second SIGTERM, the grace
running out or the supervisor's death end it at once.
Exit codes: see :mod:`takopi.worker.codes`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NoReturn

from takopi.worker.codes import (
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from takopi.worker.environment import install_environment

KINDS = ("engine", "transport", "command")
GROUPS = {
    "engine": "takopi.engine_backends",
    "transport": "takopi.transport_backends",
    "command": "takopi.command_backends",
}


WorkerArgs = SimpleNamespace
"""The worker's command line (see :data:`USAGE` and :func:`_parse`)."""

SYNOPSIS = """usage: python -m takopi.worker [--kind {engine,transport,command}] [--id ID]
       [--endpoint ENDPOINT] [--identity IDENTITY] [--entrypoint VALUE] [--distribution NAME]
       [--zygote | --standby | --probe] [--secret-fd N] [--supervisor-pid PID]
"""
USAGE = (
    SYNOPSIS
    + """
  --kind, --id          the plugin to host
  --endpoint            the supervisor's RPC address (zygote: per request)
  --identity            this worker's identity on the supervisor's socket
  --entrypoint          the plugin's entry point value (module:attr) as the supervisor found
                        it in this interpreter: imported without reading every
                        distribution's metadata
  --distribution        the distribution declaring --entrypoint
  --zygote              pre-import, then fork workers on request (SEQPACKET socket on
                        --secret-fd)
  --standby             pre-import, then wait for a JSON assignment (kind, id, identity,
                        secret) on --secret-fd: a warm spare the supervisor hands a
                        restarting slot
  --probe               load-check the engines named on stdin and exit (see
                        takopi.worker.probe)
"""
)

_OPTIONS = {
    "--kind": "kind",
    "--id": "plugin_id",
    "--endpoint": "endpoint",
    "--identity": "identity",
    "--entrypoint": "entrypoint",
    "--distribution": "distribution",
    "--secret-fd": "secret_fd",
    "--supervisor-pid": "supervisor_pid",
}
_FLAGS = {"--zygote": "zygote", "--standby": "standby", "--probe": "probe"}


def _parse(argv: list[str] | None) -> WorkerArgs:
    """Read the command line (getopt: argparse and its gettext cost a fresh worker ~0.3 MiB);
    a usage error exits with :data:`EXIT_USAGE`, ``--help`` with 0."""
    import getopt

    longopts = [o[2:] + "=" for o in _OPTIONS] + [f[2:] for f in _FLAGS] + ["help"]
    args = WorkerArgs(**dict.fromkeys(_OPTIONS.values()), **dict.fromkeys(_FLAGS.values(), False))
    try:
        opts, rest = getopt.getopt(sys.argv[1:] if argv is None else argv, "h", longopts)
        if rest:
            raise getopt.GetoptError(f"unrecognized arguments: {' '.join(rest)}")
        for opt, value in opts:
            if opt in ("-h", "--help"):
                sys.stdout.write(USAGE)
                raise SystemExit(EXIT_OK)
            if opt in _FLAGS:
                setattr(args, _FLAGS[opt], True)
            elif opt in ("--secret-fd", "--supervisor-pid"):
                setattr(args, _OPTIONS[opt], int(value))
            else:
                setattr(args, _OPTIONS[opt], value)
        if args.kind is not None and args.kind not in KINDS:
            raise getopt.GetoptError(f"--kind must be one of {', '.join(KINDS)}")
    except (getopt.GetoptError, ValueError) as exc:
        print(f"{SYNOPSIS}python -m takopi.worker: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return args


def _read_secret(fd: int | None) -> str | None:
    if fd is None:
        return None
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < 4096:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    secret = data.decode("ascii", "replace").strip()
    return secret or None


def kill_descendants(grace: float = 1.0) -> None:
    """SIGTERM every descendant (and its process group), wait ``grace``, then SIGKILL."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    if not children:
        return
    own_pgid = os.getpgid(0)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for child in children:
            with contextlib.suppress(OSError, psutil.Error):
                pgid = os.getpgid(child.pid)
                if pgid == child.pid and pgid != own_pgid:
                    os.killpg(pgid, sig)
                os.kill(child.pid, sig)
        if sig == signal.SIGTERM:
            _gone, alive = psutil.wait_procs(children, timeout=grace)
            children = alive
            if not children:
                return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True  # PermissionError included: it exists


def _set_parent_death_signal(signum: int) -> bool:
    from takopi.utils.libc import PR_SET_PDEATHSIG, prctl

    return prctl(PR_SET_PDEATHSIG, signum)


_graceful_stop: Callable[[], None] | None = None
"""Set by a transport worker: asks its serve loop to let the plugin finish (see shutdown)."""
_graceful_started = False
_supervisor_pid: int | None = None


def _hard_exit() -> None:
    kill_descendants()
    os._exit(EXIT_OK)


def _on_sigterm(signum: int, _frame: Any) -> None:
    global _graceful_started
    stop = _graceful_stop
    supervisor_alive = _supervisor_pid is None or os.getppid() == _supervisor_pid
    if signum == signal.SIGTERM and stop is not None and not _graceful_started and supervisor_alive:
        _graceful_started = True
        from takopi.worker.transport import LOOP_STOP_WAIT, STOP_GRACE

        # Whatever happens in the graceful path, the process is gone after this.
        timer = threading.Timer(STOP_GRACE + LOOP_STOP_WAIT + 1.0, _hard_exit)
        timer.daemon = True
        timer.start()
        stop()
        return
    kill_descendants()
    os._exit(EXIT_OK if signum == signal.SIGTERM else 128 + signum)


def _install_signals(supervisor_pid: int | None) -> None:
    global _supervisor_pid
    _supervisor_pid = supervisor_pid
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal(signal.SIGTERM)
    # The parent may have died before prctl took effect.
    if supervisor_pid is not None and os.getppid() != supervisor_pid:
        os._exit(EXIT_PEER_LOST)


def _distribution(kind: str, plugin_id: str) -> str | None:
    try:
        from takopi.plugins import find_entrypoint

        return find_entrypoint(GROUPS[kind], plugin_id).distribution
    except Exception:
        return None


def _remember_entrypoint(args: WorkerArgs) -> None:
    """Take the entry point the supervisor told us (if any) as our plugin's."""
    if not isinstance(args.entrypoint, str) or not args.entrypoint:
        return
    from takopi.plugins import PluginEntryPoint, remember_entrypoint

    distribution = args.distribution if isinstance(args.distribution, str) else None
    remember_entrypoint(
        PluginEntryPoint(GROUPS[args.kind], args.plugin_id, args.entrypoint, distribution)
    )


def _make_host(kind: str, plugin_id: str) -> Any:
    if kind == "engine":
        from takopi.worker.engine import EngineHost

        return EngineHost(plugin_id)
    if kind == "transport":
        from takopi.worker.transport import TransportHost

        return TransportHost(plugin_id)
    from takopi.worker.command import CommandHost

    return CommandHost(plugin_id)


async def _serve(args: WorkerArgs, secret: str) -> int:
    import asyncio

    import anyio

    from takopi import __version__
    from takopi.api import TAKOPI_PLUGIN_API_VERSION
    from takopi.logging import get_logger
    from takopi.protocol import Hello
    from takopi.rpc import PROTOCOL_VERSION, DealerEndpoint, HandshakeRefused, RpcError

    log = get_logger("takopi.worker")
    host = _make_host(args.kind, args.plugin_id)
    hello = Hello(
        kind=args.kind,
        id=args.plugin_id,
        secret=secret,
        protocol=PROTOCOL_VERSION,
        api_version=TAKOPI_PLUGIN_API_VERSION,
        takopi_version=__version__,
        python=platform.python_version(),
        python_executable=sys.executable,
        distribution=_distribution(args.kind, args.plugin_id),
        pid=os.getpid(),
    )
    try:
        peer = await DealerEndpoint.connect(
            args.endpoint, identity=args.identity.encode(), hello=hello.to_wire()
        )
    except HandshakeRefused as exc:
        log.error("worker.refused", reason=exc.message)
        print(f"takopi worker refused by supervisor: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except (RpcError, OSError, TimeoutError) as exc:
        log.error("worker.connect_failed", error=str(exc))
        return EXIT_PEER_LOST
    install_environment(peer.info.pop("env", None))
    host.register(peer)
    await peer.notify("worker.attached")
    loop_token = anyio.lowlevel.current_token()
    finished = anyio.Event()

    def on_finished(_code: int) -> None:
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run_sync(finished.set, token=loop_token)

    host.on_finished = on_finished
    with contextlib.suppress(Exception):
        peer.on_close.append(lambda *_a: finished.set())
    stop_requested = anyio.Event()
    shutdown = getattr(host, "shutdown", None)
    if shutdown is not None:
        global _graceful_stop
        loop = asyncio.get_running_loop()

        def request_stop() -> None:  # from the signal handler, on this thread
            loop.call_soon_threadsafe(stop_requested.set)

        _graceful_stop = request_stop
    while not finished.is_set() and not peer.closed and host.exit_code is None:
        if stop_requested.is_set():
            assert shutdown is not None
            await shutdown()
            if host.exit_code is None:
                host.exit_code = EXIT_OK
            break
        with anyio.move_on_after(0.05):
            await finished.wait()
    if host.exit_code is not None and not peer.closed:
        await anyio.sleep(0.1)  # let the failure report reach the supervisor
    code: int | None = host.exit_code
    if code is None:
        code = EXIT_PEER_LOST if peer.closed else EXIT_OK
    with contextlib.suppress(Exception):
        await peer.aclose()
    return code


def _preload() -> None:
    """Import what every worker needs before an assignment arrives (standby mode)."""
    from takopi.logging import setup_logging
    from takopi.worker_stack import import_worker_stack

    import_worker_stack()
    setup_logging(stream=sys.stderr)


BUILTIN_RUNNER_MODULES = (
    "takopi.runners.codex",
    "takopi.runners.claude",
    "takopi.runners.opencode",
    "takopi.runners.pi",
)
RUNNER_PRELOAD_IDLE_S = 2.0
"""The zygote imports the builtin runners once it forked a transport worker, or when no
request came for this long, whichever is first."""


def _preload_transport_host() -> None:
    """Zygote only, before its first fork: the transport host every transport worker needs."""
    _import_quietly(("takopi.worker.transport",))


def _preload_builtin_runners() -> None:
    """Zygote only: import takopi's own runners, so that an engine worker forked later starts
    with its runner already loaded. Done after the transport worker was forked (it never runs
    a runner, and once the zygote retires, pages it inherited are its alone). Third-party
    plugins are never imported here: one that fails or misbehaves at import must only affect
    its own worker."""
    _import_quietly(BUILTIN_RUNNER_MODULES)
    gc.freeze()  # as for the first preload (see _zygote)


def _import_quietly(names: tuple[str, ...]) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # its worker reports the real error when it loads it
            print(f"takopi zygote: preloading {name} failed: {exc}", file=sys.stderr)


def _await_assignment(args: WorkerArgs) -> str | None:
    """Standby: block until the supervisor writes ``{"kind", "id", "identity", "secret"}``."""
    import json

    raw = _read_secret(args.secret_fd)
    if not raw:
        return None
    try:
        assignment = json.loads(raw)
        args.kind = assignment["kind"]
        args.plugin_id = assignment["id"]
        args.identity = assignment["identity"]
        args.entrypoint = assignment.get("entrypoint")
        args.distribution = assignment.get("distribution")
        secret = assignment["secret"]
    except (ValueError, KeyError, TypeError):
        return None
    if args.kind not in KINDS or not isinstance(secret, str):
        return None
    return secret


def _probe_and_exit() -> NoReturn:
    """Be the engine probe (:mod:`takopi.worker.probe`; stdin/stdout are its pipes)."""
    _name_process("probe", "")
    from takopi.worker.probe import main as probe

    code = probe()
    kill_descendants()
    sys.stderr.flush()
    os._exit(code)  # threads a plugin started at import must not keep it alive


def _name_process(kind: str, plugin_id: str) -> None:
    """Name this process ``tk-<kind>-<id>`` (15 bytes at most) for ps/top: workers forked by
    the zygote, or assigned as a standby, would otherwise all show the same command line."""
    name = (f"tk-{kind}-{plugin_id}" if plugin_id else f"tk-{kind}").encode()[:15]
    with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:
        comm.write(name)


def _run_worker(args: WorkerArgs, secret: str) -> NoReturn:
    """Serve the assigned plugin until done, then exit the process with its code."""
    from takopi.logging import setup_logging

    _name_process(args.kind, args.plugin_id)
    _remember_entrypoint(args)
    setup_logging(stream=sys.stderr)
    import anyio

    code = anyio.run(_serve, args, secret, backend="asyncio")
    kill_descendants()
    sys.stdout.flush()
    sys.stderr.flush()
    # Plugin threads (a transport's loop) must not keep the process alive.
    os._exit(code)


def _zygote(args: WorkerArgs) -> int:
    """Pre-import once, then fork a worker per request (``{"kind", "id", "identity",
    "secret"}`` plus one fd for its stdout+stderr) received on the SEQPACKET socket
    ``--secret-fd``. Workers are double-forked so that they are re-parented to the
    supervisor (a child subreaper): it reaps them and gets their exit codes; each answer is
    ``{"pid": N}`` (0 on failure)."""
    import json
    import select
    import socket

    sock = socket.socket(fileno=args.secret_fd)
    _install_signals(args.supervisor_pid)
    _name_process("zygote", "")
    _preload()
    _preload_transport_host()
    # Keep the imported objects out of the collector's reach: a full collection in a forked
    # worker would otherwise write to (and so copy) every page they live on.
    gc.freeze()
    try:
        sock.send(b'{"ready": true}')
    except OSError:  # the supervisor is gone (e.g. `takopi` stopped at a config error)
        return EXIT_PEER_LOST
    runners_loaded = False
    while True:
        if not runners_loaded and not select.select([sock], [], [], RUNNER_PRELOAD_IDLE_S)[0]:
            _preload_builtin_runners()
            runners_loaded = True
            continue
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
        except OSError:
            return EXIT_PEER_LOST
        if not msg:
            return EXIT_OK  # the supervisor closed its end
        pid = 0
        kind = None
        try:
            request = json.loads(msg)
            kind = request.get("kind")
            pid = _fork_worker(args, request, fds, sock)
        except Exception as exc:
            print(f"takopi zygote: fork failed: {exc}", file=sys.stderr)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            sock.send(json.dumps({"pid": pid}).encode())
        except OSError:
            return EXIT_PEER_LOST
        if kind == "transport" and pid and not runners_loaded:
            _preload_builtin_runners()
            runners_loaded = True


def _fork_worker(args: WorkerArgs, request: dict[str, Any], fds: list[int], sock: Any) -> int:
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:  # intermediate: start the worker, report its pid, vanish
        try:
            os.close(read_fd)
            sock.close()
            os.setsid()
            worker = os.fork()
            if worker == 0:
                os.close(write_fd)
                _become_worker(args, request, fds)
            os.write(write_fd, str(worker).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 64):
        data += chunk
    os.close(read_fd)
    os.waitpid(middle, 0)
    return int(data or b"0")


def _become_worker(args: WorkerArgs, request: dict[str, Any], fds: list[int]) -> NoReturn:
    code = EXIT_USAGE
    try:
        if len(fds) == 3:  # stdin, stdout, stderr given (a transport on the terminal)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
        else:  # stdout+stderr captured on one pipe, no stdin
            out = fds[0]
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            for fd in (null, *fds):
                os.close(fd)
        # Wait to be re-parented to the supervisor before asking for its death signal; a
        # re-parenting elsewhere means the supervisor (the subreaper) is gone already.
        deadline = time.monotonic() + 2.0
        intermediate = os.getppid()
        while (parent := os.getppid()) != args.supervisor_pid and time.monotonic() < deadline:
            if parent != intermediate or not _alive(args.supervisor_pid):
                os._exit(EXIT_PEER_LOST)
            time.sleep(0.001)
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != args.supervisor_pid:
            os._exit(EXIT_PEER_LOST)
        if request.get("kind") == "probe":
            _probe_and_exit()
        args.endpoint = request.get("endpoint") or args.endpoint
        args.kind = request["kind"]
        args.plugin_id = request["id"]
        args.identity = request["identity"]
        args.entrypoint = request.get("entrypoint")
        args.distribution = request.get("distribution")
        args.standby = args.zygote = False
        _run_worker(args, str(request["secret"]))
    finally:
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m takopi.worker``."""
    args = _parse(argv)
    if args.zygote:
        if args.secret_fd is None or args.supervisor_pid is None:
            print("takopi worker: --zygote needs --secret-fd and --supervisor-pid", file=sys.stderr)
            return EXIT_USAGE
        return _zygote(args)
    if args.probe:
        _install_signals(args.supervisor_pid)
        _probe_and_exit()
    if args.standby:
        _install_signals(args.supervisor_pid)
        _preload()
        secret = _await_assignment(args)
    else:
        secret = _read_secret(args.secret_fd)
    if not secret or not args.kind or not args.plugin_id or not args.identity or not args.endpoint:
        print(
            "takopi worker: missing --kind/--id/--identity/--endpoint or no secret",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not args.standby:
        _install_signals(args.supervisor_pid)
    _run_worker(args, secret)


__all__ = ["kill_descendants", "main"]
