"""kill -9 an idle engine worker → its replacement is ready (median over N kills).

Run: ``.venv/bin/python bench/bench_restart.py [kills]``. The restart policy is relaxed
(``stable_after`` short, high restart budget) so that every kill gets the immediate first
restart a stable worker gets in production. Baseline: the interpreter floor
(``python -c "import zmq, msgpack, anyio"``) measured in the same run.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time

from _harness import cleanup, harness, python_floor, wait_until

CONFIG = (
    "[supervisor]\nping_interval = 5.0\n"
    "[supervisor.restart]\nstable_after = 0.3\nmax_restarts = 1000\n"
)


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    floor = python_floor()
    h = harness()
    samples = []
    try:
        h.write_config(extra=CONFIG)
        h.start(env={"TAKOPI_LOG_LEVEL": "warning"})
        h.warm_engine()  # engine workers start on first use
        for _ in range(kills):
            time.sleep(0.4)  # let the worker count as stable
            old = h.worker("engine:scripted")["pid"]
            t0 = time.perf_counter()
            os.kill(old, signal.SIGKILL)

            def back(old: int = old) -> bool:
                w = h.worker("engine:scripted")
                return w["state"] == "ready" and w["pid"] not in (None, old)

            wait_until(back, timeout=30, interval=0.002)
            samples.append(time.perf_counter() - t0)
    finally:
        cleanup(h)
    med = statistics.median(samples)
    print(f"kills                         : {len(samples)}")
    print(f"python import floor (median)  : {floor * 1000:.0f} ms")
    print(
        f"kill -9 → ready (median/p90)  : {med * 1000:.0f} ms / "
        f"{sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:.0f} ms"
    )
    print(f"ratio restart / floor         : {med / floor:.2f}")
    print(f"target ≤ 150 ms median        : {'met' if med <= 0.150 else 'NOT met'}")


if __name__ == "__main__":
    main()
