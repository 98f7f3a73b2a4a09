"""Soak + chaos at full size (issue #14): 500 messages over 20 chats against the fake Bot API
while engine and transport workers are SIGKILLed at random (seeded).

Run: ``.venv/bin/python bench/bench_soak.py [messages] [chats] [seed] [--final-notify]``
(``--final-notify``: finals as new notifying messages, which a kill right after Telegram took
one can repeat — see ``tests/process/soak.py``). Prints the messages
sent, the kills made, terminal replies (by status), messages without a reply, duplicates,
orphans (runs, deliveries or intakes left open once quiet, and stray processes after the
stop), the supervisor's RSS after warm-up (the first fifth answered) and at the end, and the
wall time. Exits non-zero if the exactly-once contract was broken. The CI-size run is
``tests/process/test_soak.py``.
"""

from __future__ import annotations

import sys

from _harness import REPO  # noqa: F401  (puts the repo on sys.path)

from tests.process.soak import Soak

MIB = 1024 * 1024


def main() -> int:
    final_notify = "--final-notify" in sys.argv
    args = [arg for arg in sys.argv[1:] if arg != "--final-notify"]
    messages = int(args[0]) if len(args) > 0 else 500
    chats = int(args[1]) if len(args) > 1 else 20
    seed = int(args[2]) if len(args) > 2 else None
    with Soak(messages=messages, chats=chats, seed=seed, final_notify=final_notify) as soak:
        report = soak.run(reply_timeout=600)
    replies = sum(len(texts) for texts in report.replies.values())
    growth = report.rss_end - report.rss_warm
    print(f"seed                          : {report.seed}")
    print(f"messages / chats              : {report.messages} / {report.chats}")
    print(f"finals                        : {'new messages' if final_notify else 'edits'}")
    print(f"kills (engine / transport)    : {report.kills['engine']} / {report.kills['transport']}")
    print(f"terminal replies              : {replies} {report.by_status()}")
    print(f"messages without a reply      : {len(report.missing)}")
    print(f"messages with duplicates      : {len(report.duplicated)}")
    print(f"orphans (left open / strays)  : {report.leftovers} / {report.stray_processes}")
    print(
        f"supervisor RSS warm → end     : {report.rss_warm / MIB:.1f} MiB → "
        f"{report.rss_end / MIB:.1f} MiB ({growth / MIB:+.1f} MiB)"
    )
    print(f"wall time                     : {report.elapsed:.1f} s")
    broken = report.missing or report.duplicated or report.orphans or report.stop_code != 0
    print(f"exactly-once contract         : {'BROKEN' if broken else 'held'}")
    for index, texts in list(report.duplicated.items())[:5]:
        print(f"  duplicate replies to message {index}: {[t[:80] for t in texts]}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
