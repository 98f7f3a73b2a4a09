"""Supervisor start → READY=1 with 4 engines + the transport.

Run: ``.venv/bin/python bench/bench_startup.py [runs]``. Uses the real engine backends
(codex/claude/opencode/pi when installed as entry points, test engines otherwise). READY=1 is
sent once the transport is ready, which is after every engine was load-checked (imported, its
runner built, its CLI looked up: a missing CLI gives ``missing_cli``); engine workers themselves
start on first use. Timing: from spawning the supervisor to the sd_notify READY=1 datagram on a
socket this script owns. Baseline: ``python -c pass``.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time

from _harness import REPO, cleanup, harness

PREFERRED = ("claude", "codex", "opencode", "pi")
FALLBACK = ("scripted", "flood")


def engines() -> tuple[str, ...]:
    from takopi.engines import list_backends

    installed = set(list_backends())
    chosen = [e for e in PREFERRED if e in installed]
    for extra in FALLBACK:
        if len(chosen) < 4:
            chosen.append(extra)
    return tuple(chosen[:4])


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    # Measure with bytecode compiled, as pip install and scripts/bootstrap.sh leave it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "takopi"], cwd=REPO, check=True)
    floor = statistics.median(
        [
            _time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
            for _ in range(5)
        ]
    )
    chosen = engines()
    samples = []
    for _ in range(runs):
        h = harness()
        path = h.base / "n.sock"
        sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sink.bind(str(path))
        sink.settimeout(60)
        try:
            h.write_config(default_engine=chosen[0])
            t0 = time.perf_counter()
            h.start(
                engines=chosen,
                env={"NOTIFY_SOCKET": str(path), "TAKOPI_LOG_LEVEL": "warning"},
                wait_ready=False,
            )
            while b"READY=1" not in sink.recv(4096):
                pass
            samples.append(time.perf_counter() - t0)
        finally:
            sink.close()
            cleanup(h)
    med = statistics.median(samples)
    print(f"engines                       : {', '.join(chosen)} + transport recorder")
    print(f"python -c pass (median)       : {floor * 1000:.0f} ms")
    print(
        f"start → READY=1 (median, n={runs}) : {med * 1000:.0f} ms  (min {min(samples) * 1000:.0f} ms)"
    )
    print(f"ratio start / interpreter     : {med / floor:.1f}")
    print(f"target ≤ 1 s                  : {'met' if med <= 1.0 else 'NOT met'}")


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
