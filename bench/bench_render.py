"""Markdown → Telegram text + entities: takopi's token renderer vs the reference pipeline
(markdown-it → HTML → sulguk), speed and transport memory, both measured in this run.

Run: ``.venv/bin/python bench/bench_render.py [rounds]`` (sulguk comes with the dev extra).

Speed: the same corpus (the hand-picked cases of tests/telegram/test_render_entities.py plus
a long agent-style answer) rendered ``rounds`` times by each pipeline, best of 5; the outputs
are checked to be equal first. Memory: USS and PSS of a fresh interpreter that imported
``takopi.telegram.loop`` (the transport) and rendered one message, once with takopi's
renderer and once with sulguk's pipeline imported and used as well (shared libraries that
other processes on the machine also map, lxml's for one, count less: expect some noise).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.sulguk_reference import sulguk_render, token_render  # noqa: E402
from tests.telegram.test_render_entities import CASES  # noqa: E402

ANSWER = (
    "## Summary\n\nI changed **three** files:\n\n"
    "1. `takopi/telegram/render.py` — the *renderer* now walks tokens\n"
    "2. `tests/…` — new [tests](https://example.com/t)\n   - differential\n   - fuzz\n\n"
    "```python\ndef f(x):\n    return x * 2\n```\n\n> Note: run `pytest -q` before merging.\n\n"
)
CORPUS = [*CASES.values(), ANSWER * 8]

USS = """
import sys, psutil
import takopi.telegram.loop
from takopi.telegram.render import render_markdown
render_markdown("# t\\n\\n- *x* `y` [l](https://h)")
if sys.argv[1] == "sulguk":
    from tests.support.sulguk_reference import sulguk_render
    sulguk_render("# t\\n\\n- *x* `y` [l](https://h)")
info = psutil.Process().memory_full_info()
print(info.uss, info.pss)
"""


def best_of(render: Callable[[str], object], rounds: int) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            for markdown in CORPUS:
                render(markdown)
        times.append(time.perf_counter() - start)
    return min(times)


def memory(mode: str) -> tuple[int, int]:
    """(USS, PSS) in bytes of a fresh transport interpreter; ``mode`` "sulguk" also loads
    and runs the reference pipeline."""
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", USS, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    uss, pss = out.stdout.split()
    return int(uss), int(pss)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for markdown in CORPUS:
        assert token_render(markdown) == sulguk_render(markdown), markdown
    ours = best_of(token_render, rounds)
    reference = best_of(sulguk_render, rounds)
    renders = rounds * len(CORPUS)
    print(f"corpus: {len(CORPUS)} documents, {sum(map(len, CORPUS))} chars; {rounds} rounds")
    print(f"takopi renderer: {ours / renders * 1e6:8.1f} µs/document")
    print(f"sulguk pipeline: {reference / renders * 1e6:8.1f} µs/document")
    print(f"speed-up: {reference / ours:.2f}x")
    mib = 1024 * 1024
    (own_uss, own_pss), (ref_uss, ref_pss) = memory("takopi"), memory("sulguk")
    print(
        f"transport, takopi renderer:   USS {own_uss / mib:5.1f} MiB, PSS {own_pss / mib:5.1f} MiB"
    )
    print(
        f"transport, + sulguk pipeline: USS {ref_uss / mib:5.1f} MiB, PSS {ref_pss / mib:5.1f} MiB"
    )
    print(
        f"saved: USS {(ref_uss - own_uss) / mib:.1f} MiB, PSS {(ref_pss - own_pss) / mib:.1f} MiB"
    )


if __name__ == "__main__":
    main()
