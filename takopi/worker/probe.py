"""``python -m takopi.worker --probe``: load-check engines before any engine worker exists.

The supervisor decides which engines exist (behavior.md §1.3: an engine whose plugin cannot be
loaded is left out, one whose CLI is missing is unavailable) before the transport builds its
startup message, without keeping a worker per engine. This short-lived process does what an
engine worker's ``load`` does — import the plugin, build the runner from its table, look for
its CLI — for each engine in turn, reports each answer, and exits.

It runs as ``python -m takopi.worker --probe`` or forked by the fork server (which has
takopi's own engines imported already, so checking them costs next to nothing).

Wire: stdin carries one :class:`~takopi.protocol.EngineProbe`; stdout carries
:class:`~takopi.protocol.EngineProbed` frames (4-byte big-endian length + codec bytes): one
naming the engine before it is loaded (so a plugin that kills or hangs the process is known),
one with its answer after. Whatever plugins print goes to stderr, never into the frames.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from takopi.protocol.framing import read_frame, write_frame


def _read_request(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    frame, _rest = read_frame(data)
    if frame is None:
        raise ValueError("no probe request on stdin")
    return frame


def main() -> int:
    """Probe the engines named on stdin; 0 once every answer is written."""
    from takopi.logging import setup_logging

    # The frames own the real stdout; plugins printing at import time write to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    setup_logging(stream=sys.stderr)

    from takopi.protocol import EngineProbe, EngineProbed
    from takopi.rpc.codec import decode, encode
    from takopi.worker.engine import load_engine

    try:
        request = decode(_read_request(0))
    except (ValueError, TypeError) as exc:
        print(f"takopi engine probe: bad request: {exc}", file=sys.stderr)
        return 2
    if not isinstance(request, EngineProbe):
        print("takopi engine probe: bad request", file=sys.stderr)
        return 2
    if request.env is not None:
        from takopi.worker.environment import install_environment

        install_environment(request.env)
    path = Path(request.config_path) if request.config_path else Path.cwd() / "takopi.toml"
    for engine, table in request.engines.items():
        write_frame(out, encode(EngineProbed(engine=engine)))
        _runner, result = load_engine(engine, dict(table or {}), path)
        write_frame(out, encode(EngineProbed(engine=engine, result=result)))
    out.close()
    return 0


__all__ = ["main"]
