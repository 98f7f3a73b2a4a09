"""What starting an engine worker on demand adds to a run's latency.

Run: ``.venv/bin/python bench/bench_first_run.py [runs]``.

A message → its final reply, through the supervisor with the recording test transport and the
``scripted`` test engine (a real CLI subprocess answering at once), in three situations:

- **warm** (the baseline, same run): the engine worker is ready;
- **first use**: the first run after start-up (the worker starts now; the fork server is up);
- **after idle**: the engine worker retired after ``[supervisor] engine_idle_s`` and, with it,
  the fork server and the spare (the worker starts from nothing).

Medians over ``runs`` samples each, and the extra latency against warm.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from _harness import SupervisorHarness, cleanup, harness, wait_until

IDLE_S = 0.5


def _round_trip(h: SupervisorHarness, text: str) -> float:
    before = len(h.finals())
    t0 = time.perf_counter()
    h.send(f"{text} answer={text}")
    wait_until(lambda: len(h.finals()) > before, 60, interval=0.002)
    elapsed = time.perf_counter() - t0
    assert text in h.finals()[-1]["text"], h.finals()[-1]
    return elapsed


def _start(extra: str = "") -> SupervisorHarness:
    h = harness()
    h.write_config(extra=extra)
    h.start(env={"TAKOPI_LOG_LEVEL": "warning"})
    return h


def warm(runs: int) -> list[float]:
    h = _start()
    try:
        _round_trip(h, "wake")
        return [_round_trip(h, f"warm{i}") for i in range(runs)]
    finally:
        cleanup(h)


def first_use(runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        h = _start()
        try:
            assert h.worker("engine:scripted")["state"] == "not-started"
            samples.append(_round_trip(h, f"first{i}"))
        finally:
            cleanup(h)
    return samples


def after_idle(runs: int) -> list[float]:
    h = _start(f"[supervisor]\nengine_idle_s = {IDLE_S}\n")
    samples = []
    try:
        for i in range(runs):

            def idle() -> bool:
                status = h.control("status")
                worker = next(w for w in status["workers"] if w["name"] == "engine:scripted")
                return worker["state"] in ("retired", "not-started") and not status["helpers"]

            wait_until(idle, 30)
            samples.append(_round_trip(h, f"idle{i}"))
    finally:
        cleanup(h)
    return samples


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"load average                  : {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = statistics.median(warm(runs))
    print(f"warm run (median, n={runs})     : {base * 1000:.0f} ms")
    for name, fn in (("first use", first_use), ("after idle", after_idle)):
        med = statistics.median(fn(runs))
        print(
            f"{name + f' (median, n={runs})':30}: {med * 1000:.0f} ms"
            f"  (+{(med - base) * 1000:.0f} ms, ratio {med / base:.2f})"
        )


if __name__ == "__main__":
    main()
