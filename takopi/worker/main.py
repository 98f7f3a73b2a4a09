"""``python -m takopi.worker --kind engine|transport|command --id X --endpoint ipc://...
--identity I --secret-fd N``: host exactly one plugin for the supervisor.

The one-time secret is read from the inherited file descriptor ``--secret-fd`` (never argv or
the environment). The worker asks the kernel for SIGTERM when its parent dies, and on SIGTERM
kills every process it started (agent CLIs run in their own process groups) before exiting.
Exit codes: see :mod:`takopi.worker.codes`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import sys
import time
from typing import Any

from takopi.worker.codes import (
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_REFUSED,
    EXIT_USAGE,
)

KINDS = ("engine", "transport", "command")
GROUPS = {
    "engine": "takopi.engine_backends",
    "transport": "takopi.transport_backends",
    "command": "takopi.command_backends",
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m takopi.worker", add_help=True)
    parser.add_argument("--kind", choices=KINDS)
    parser.add_argument("--id", dest="plugin_id")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--identity")
    parser.add_argument(
        "--standby",
        action="store_true",
        help="pre-import, then wait for a JSON assignment (kind, id, identity, secret) on "
        "--secret-fd: a warm spare the supervisor hands a restarting slot",
    )
    parser.add_argument("--secret-fd", type=int, default=None)
    parser.add_argument("--supervisor-pid", type=int, default=None)
    return parser.parse_args(argv)


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


def _set_parent_death_signal(signum: int) -> bool:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(1, signum, 0, 0, 0)) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _on_sigterm(signum: int, _frame: Any) -> None:
    kill_descendants()
    os._exit(EXIT_OK if signum == signal.SIGTERM else 128 + signum)


def _install_signals(supervisor_pid: int | None) -> None:
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


def _make_host(kind: str, plugin_id: str) -> Any:
    if kind == "engine":
        from takopi.worker.engine import EngineHost

        return EngineHost(plugin_id)
    if kind == "transport":
        from takopi.worker.transport import TransportHost

        return TransportHost(plugin_id)
    from takopi.worker.command import CommandHost

    return CommandHost(plugin_id)


async def _serve(args: argparse.Namespace, secret: str) -> int:
    import anyio

    from takopi import __version__
    from takopi.api import TAKOPI_PLUGIN_API_VERSION
    from takopi.logging import get_logger
    from takopi.rpc import PROTOCOL_VERSION, DealerEndpoint, HandshakeRefused, RpcError

    log = get_logger("takopi.worker")
    host = _make_host(args.kind, args.plugin_id)
    hello = {
        "protocol": PROTOCOL_VERSION,
        "api_version": TAKOPI_PLUGIN_API_VERSION,
        "takopi_version": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "kind": args.kind,
        "id": args.plugin_id,
        "distribution": _distribution(args.kind, args.plugin_id),
        "pid": os.getpid(),
        "secret": secret,
    }
    try:
        peer = await DealerEndpoint.connect(
            args.endpoint, identity=args.identity.encode(), hello=hello
        )
    except HandshakeRefused as exc:
        log.error("worker.refused", reason=exc.message)
        print(f"takopi worker refused by supervisor: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    except (RpcError, OSError, TimeoutError) as exc:
        log.error("worker.connect_failed", error=str(exc))
        return EXIT_PEER_LOST
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
    while not finished.is_set() and not peer.closed and host.exit_code is None:
        with anyio.move_on_after(0.05):
            await finished.wait()
    if host.exit_code is not None and not peer.closed:
        await anyio.sleep(0.1)  # let the failure report reach the supervisor
    code = host.exit_code
    if code is None:
        code = EXIT_PEER_LOST if peer.closed else EXIT_OK
    with contextlib.suppress(Exception):
        await peer.aclose()
    return code


def _preload() -> None:
    """Import what every worker needs before an assignment arrives (standby mode)."""
    import anyio  # noqa: F401

    import takopi.api
    import takopi.engines
    import takopi.model
    import takopi.rpc
    import takopi.runner
    import takopi.worker.engine
    import takopi.worker.proxies
    from takopi.plugins import list_entrypoints

    list_entrypoints(GROUPS["engine"])  # warms importlib.metadata
    import takopi.backends
    import takopi.config
    import takopi.events
    import takopi.runners.run_options
    import takopi.utils.paths  # noqa: F401
    from takopi.logging import setup_logging

    setup_logging(stream=sys.stderr)


def _await_assignment(args: argparse.Namespace) -> str | None:
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
        secret = assignment["secret"]
    except (ValueError, KeyError, TypeError):
        return None
    if args.kind not in KINDS or not isinstance(secret, str):
        return None
    return secret


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m takopi.worker``."""
    started = time.monotonic()
    args = _parse(argv)
    if args.standby:
        _install_signals(args.supervisor_pid)
        _preload()
        secret = _await_assignment(args)
    else:
        secret = _read_secret(args.secret_fd)
    if not secret or not args.kind or not args.plugin_id or not args.identity:
        print("takopi worker: missing --kind/--id/--identity or no secret", file=sys.stderr)
        return EXIT_USAGE
    if not args.standby:
        _install_signals(args.supervisor_pid)

    from takopi.logging import setup_logging

    setup_logging(stream=sys.stderr)
    import anyio

    code = anyio.run(_serve, args, secret, backend="asyncio")
    kill_descendants()
    del started
    sys.stdout.flush()
    sys.stderr.flush()
    # Plugin threads (a transport's loop) must not keep the process alive.
    os._exit(code)


__all__ = ["kill_descendants", "main"]
