"""Events/s from an engine worker through the supervisor to a transport worker, vs a raw pipe.

Run: ``.venv/bin/python bench/bench_pipeline.py [events]``. The engine is the in-process
``flood`` test engine; the transport drains the runner proxy as fast as it can. The baseline
sends the same events codec-encoded in batches of 256 over an ``os.pipe`` from a forked child
and decodes them (same run, same machine). The target is judged on the median of the runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time

from _harness import cleanup, harness, wait_until

BASELINE = textwrap.dedent(
    """
    import os, sys, time, msgpack
    from takopi.rpc.codec import encode, decode
    from takopi.model import Action, ActionEvent
    n = int(sys.argv[1])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        ev = ActionEvent(engine="flood", action=Action(id="x", kind="command", title="tick"), phase="updated")
        out = os.fdopen(w, "wb", buffering=1 << 16)
        batch = 256
        for i in range(0, n, batch):
            frame = encode([ev] * min(batch, n - i))
            out.write(len(frame).to_bytes(4, "little") + frame)
        out.close()
        os._exit(0)
    os.close(w)
    inp = os.fdopen(r, "rb", buffering=1 << 16)
    t = time.perf_counter()
    count = 0
    while True:
        head = inp.read(4)
        if not head:
            break
        count += len(decode(inp.read(int.from_bytes(head, "little"))))
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    print(count, dt)
    """
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(n)], capture_output=True, text=True, check=True
    ).stdout.split()
    base_rate = int(out[0]) / float(out[1])

    h = harness()
    try:
        h.write_config(default_engine="flood")
        h.start(engines=("flood",), env={"TAKOPI_LOG_LEVEL": "warning"})
        rates = []
        for i in range(5):
            h.send(str(n), op="drain", engine="flood")
            done = wait_until(lambda i=i: h.outbox_ops("drain_done")[i:], timeout=300)[0]
            rates.append(done["events"] / done["seconds"])
        best = max(rates)
        median = statistics.median(rates)
    finally:
        cleanup(h)
    print(f"events per run               : {n}")
    print(f"raw pipe (codec, batched)    : {base_rate:,.0f} events/s")
    print(
        "engine→supervisor→transport  : "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + f" events/s (median {median:,.0f}, best {best:,.0f})"
    )
    print(f"ratio pipeline / raw pipe    : {median / base_rate:.2f} (median)")
    print(f"target ≥ 100k events/s       : {'met' if median >= 100_000 else 'NOT met'} (median)")


if __name__ == "__main__":
    time.sleep(0)
    main()
