"""Idle worker USS and whole-service RSS/PSS (supervisor + 4 engine workers + transport).

Run: ``.venv/bin/python bench/bench_memory.py``. Baseline: USS of an idle interpreter that
imported only ``zmq, msgpack, anyio`` (what any worker must have), measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
from _harness import cleanup, harness
from bench_startup import engines

MIB = 1024 * 1024


def main() -> None:
    base = subprocess.Popen(
        [sys.executable, "-c", "import zmq, msgpack, anyio, time; time.sleep(30)"]
    )
    time.sleep(1.5)
    base_uss = psutil.Process(base.pid).memory_full_info().uss
    base.kill()
    base.wait()

    chosen = engines()
    h = harness()
    try:
        h.write_config(default_engine=chosen[0])
        h.start(engines=chosen, env={"TAKOPI_LOG_LEVEL": "warning"})
        time.sleep(2.0)  # idle
        status = h.control("status")
        assert h.proc is not None
        rows = [("supervisor", psutil.Process(h.proc.pid))]
        rows += [(w["name"], psutil.Process(w["pid"])) for w in status["workers"]]
        rows += [(f"({h_['name']})", psutil.Process(h_["pid"])) for h_ in status.get("helpers", [])]
        print(f"{'process':24} {'USS MiB':>8} {'PSS MiB':>8} {'RSS MiB':>8}")
        total_rss = total_pss = 0
        worker_uss = []
        for name, proc in rows:
            info = proc.memory_full_info()
            total_rss += info.rss
            total_pss += info.pss
            if name != "supervisor" and not name.startswith("("):
                worker_uss.append(info.uss)
            print(f"{name:24} {info.uss / MIB:8.1f} {info.pss / MIB:8.1f} {info.rss / MIB:8.1f}")
    finally:
        cleanup(h)
    worst = max(worker_uss)
    print(f"baseline idle interpreter USS : {base_uss / MIB:.1f} MiB")
    print(f"idle worker USS (max)         : {worst / MIB:.1f} MiB  (ratio {worst / base_uss:.2f})")
    print(f"whole service RSS / PSS       : {total_rss / MIB:.1f} / {total_pss / MIB:.1f} MiB")
    print(f"target worker USS ≤ 20 MiB    : {'met' if worst <= 20 * MIB else 'NOT met'}")


if __name__ == "__main__":
    main()
