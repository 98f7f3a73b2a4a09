"""Soak + chaos at CI size (issue #14): 60 messages over 6 chats while engine and transport
workers are SIGKILLed at random (seeded; the seed is printed, ``TAKOPI_SOAK_SEED`` replays it).
Every message gets exactly one terminal reply, nothing is left running, and the supervisor's
RSS stays flat (a generous resource bound; ``bench/bench_soak.py`` prints the precise
figures at 500/20)."""

from __future__ import annotations

import os

import pytest

from tests.process.soak import Soak

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

MIB = 1024 * 1024


def test_every_message_gets_exactly_one_terminal_reply_under_chaos() -> None:
    seed = int(os.environ["TAKOPI_SOAK_SEED"]) if "TAKOPI_SOAK_SEED" in os.environ else None
    with Soak(messages=60, chats=6, seed=seed) as soak:
        print(f"soak seed: {soak.seed}")
        report = soak.run(reply_timeout=150)
        print(report.summary())
        assert not report.missing, (report.summary(), report.missing, soak.log())
        assert not report.duplicated, (report.summary(), report.duplicated)
        assert report.kills["engine"] + report.kills["transport"] >= 3, report.summary()
        assert report.leftovers == {"runs": 0, "pending_deliveries": 0, "open_intakes": 0}, (
            report.summary()
        )
        assert report.stop_code == 0, soak.log()
        assert report.stray_processes == 0, report.summary()
        # Flat: what it grew after warm-up stays far below what a leak per message would add.
        assert report.rss_end < report.rss_warm * 1.3 + 16 * MIB, report.summary()
