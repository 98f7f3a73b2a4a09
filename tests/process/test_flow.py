"""Flow control (a stalled consumer keeps the producer bounded) and per-thread serialization
across two transports."""

from __future__ import annotations

import re

import pytest

from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def test_stalled_consumer_bounds_the_producer(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(default_engine="flood")
    supervisor.start(engines=("flood",))
    supervisor.send("500000", op="slow", engine="flood", take=20, stall=10.0)
    wait_until(lambda: supervisor.outbox_ops("slow_stalled"))
    wait_until(lambda: supervisor.control("runs")["runs"])

    def produced() -> int:
        return int(supervisor.control("runs")["runs"][0]["events"])

    # The windows fill up, then the producer must stop: without flow control the engine
    # worker would push all 500k events while the consumer stalls.
    import time

    def settled() -> int | None:
        samples = [produced()]
        for _ in range(3):
            time.sleep(0.3)
            samples.append(produced())
        return samples[0] if len(set(samples)) == 1 else None

    held = wait_until(settled, timeout=30)
    # In flight at most: the transport's window, the supervisor's channel of relayed batches,
    # the engine stream's window, and one batch on the wire.
    from takopi.rpc.peer import MAX_BATCH
    from takopi.supervisor.runs import CHANNEL_SIZE, ENGINE_WINDOW
    from takopi.worker.proxies import RUN_WINDOW

    bound = RUN_WINDOW + CHANNEL_SIZE * MAX_BATCH + ENGINE_WINDOW + MAX_BATCH
    assert bound < 20_000  # a window, not the run
    assert RUN_WINDOW // 2 <= held <= bound, (held, bound)
    time.sleep(1.0)
    assert produced() <= bound  # still held while the consumer stalls
    done = wait_until(lambda: supervisor.outbox_ops("slow_done"), timeout=30)[0]
    assert done["taken"] == 20
    # Leaving early cancelled the run: nothing runs, nothing owed.
    wait_until(lambda: supervisor.control("runs")["runs"] == [])
    assert supervisor.control("runs")["pending_deliveries"] == []
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_one_run_per_thread_across_two_transports(supervisor: SupervisorHarness) -> None:
    supervisor.write_config(extra='[supervisor]\nextra_transports = ["recorder2"]\n')
    supervisor.start()
    wait_until(lambda: supervisor.outbox_ops("ready", transport="recorder2"))
    supervisor.send("first answer=one")
    final = wait_until(lambda: supervisor.finals())[0]
    token = re.search(r"`scripted resume (\w+)`", final["text"]).group(1)  # type: ignore[union-attr]
    resume_line = f"`scripted resume {token}`"
    # Two follow-ups on the same thread from two transports, plus one more from the first.
    supervisor.send("a sleep=1 answer=A", reply_text=resume_line)
    supervisor.send("b sleep=1 answer=B", reply_text=resume_line, transport="recorder2")
    supervisor.send("c sleep=1 answer=C", reply_text=resume_line)

    def all_done() -> bool:
        texts = [f["text"] for f in supervisor.finals() + supervisor.finals("recorder2")]
        return (
            all(
                any(f"\n{x}\n" in t or t.endswith(x) or f"{x}\n" in t for t in texts) for x in "ABC"
            )
            and len(texts) >= 4
        )

    wait_until(all_done, timeout=60)
    lines = [
        line.split()
        for line in supervisor.agent_log.read_text().splitlines()
        if line.split()[1] == token
    ]
    kinds = [parts[0] for parts in lines]
    assert kinds == ["begin", "end"] * 4, kinds  # never two runs of the thread at once
    for f in supervisor.finals() + supervisor.finals("recorder2"):
        assert resume_line in f["text"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
