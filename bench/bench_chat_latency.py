"""Chat latency of the whole service, and flood limits under load.

Run: ``.venv/bin/python bench/bench_chat_latency.py [--pairs N] [--busy-seconds S]
[--coalesce S] [--skip-load]``.

The whole service — supervisor, telegram transport worker, codex engine worker running the
scripted ``codex`` of ``tests/telegram/fake_codex.py`` — against the fake Bot API on 127.0.0.1
enforcing Telegram-like flood limits (``RateLimits()``: 1 message/s per chat with a burst of 3,
20/min per group, 30/s overall; a 429 is counted). Every prompt is ``sleep 0.25 …`` (a 0.25 s
run with one command action, as in issue #12). Times are taken on the fake server
(``time.monotonic()``, system-wide on Linux): the user's update is queued → the first bot
message (the progress message) arrives → the final answer arrives; the scripted codex stamps
the moment it printed ``turn.completed`` (engine finished → final).

1. Latency, for each pacing — ``bucket`` (this outbox) and ``reference`` (the reference's
   clock: one write per second per chat, deletes included; the baseline, same run) — over
   ``--pairs`` pairs of runs: one on an idle chat (nothing written for 3.5 s), one sent the
   moment the previous final arrived ("right after"). Medians and worst cases, and the ratio
   bucket / reference. The fake Bot API's own sendMessage round trip is printed as the floor.
2. Load (bucket pacing): 20 prompts at once in one chat, then a busy chat for
   ``--busy-seconds`` (default 300): 3 users each sending the next prompt as soon as their
   previous answer arrives. Reported: runs finished, 429s, latencies.

``--coalesce`` sets ``forward_coalesce_s`` (default 0: the 1 s forward debounce the reference
also applies to every prompt would otherwise dominate the figures; see the report).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from _harness import REPO, wait_until

from tests.fakes.bot_api import BotApiServer, FakeMessage, RateLimits
from tests.support.processes import terminate

CHAT = 1001
FAKE_CODEX = REPO / "tests" / "telegram" / "fake_codex.py"
PROMPT = "sleep 0.25"
IDLE_S = 3.5  # a full bucket: 3 tokens at 1/s, plus margin

# The scripted codex, wrapped: it notes when it printed turn.completed (engine finished).
CODEX_WRAPPER = """#!{python}
import json, os, runpy, sys, time

class _Stamp:
    def __init__(self, out):
        self._out = out

    def write(self, text):
        n = self._out.write(text)
        if '"turn.completed"' in text:
            self._out.flush()
            path = os.path.join(os.environ["FAKE_CODEX_DIR"], "finished.jsonl")
            with open(path, "a") as f:
                f.write(json.dumps({{"pid": os.getpid(), "t": time.monotonic()}}) + "\\n")
        return n

    def flush(self):
        self._out.flush()

sys.stdout = _Stamp(sys.stdout)
runpy.run_path({fake!r}, run_name="__main__")
"""


@dataclass
class Run:
    """One prompt's timeline (seconds, monotonic clock)."""

    prompt: str
    user_at: float
    first_at: float | None = None
    final_at: float | None = None
    engine_done_at: float | None = None

    @property
    def first(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.user_at

    @property
    def final(self) -> float | None:
        return None if self.final_at is None else self.final_at - self.user_at

    @property
    def after_engine(self) -> float | None:
        if self.final_at is None or self.engine_done_at is None:
            return None
        return self.final_at - self.engine_done_at


class Service:
    """The supervisor with the telegram transport and the codex engine, in a temp dir."""

    def __init__(self, server: BotApiServer, *, pacing: str, coalesce: float) -> None:
        self.server = server
        self.base = Path("/tmp") / f"tkl-{uuid.uuid4().hex[:8]}"  # ipc paths are short
        self.base.mkdir()
        self.state = self.base / "codex-state"
        self.state.mkdir()
        bin_dir = self.base / "bin"
        bin_dir.mkdir()
        codex = bin_dir / "codex"
        codex.write_text(CODEX_WRAPPER.format(python=sys.executable, fake=str(FAKE_CODEX)))
        codex.chmod(codex.stat().st_mode | stat.S_IEXEC)
        config = self.base / "takopi.toml"
        config.write_text(
            "\n".join(
                [
                    'transport = "telegram"',
                    'default_engine = "codex"',
                    "[transports.telegram]",
                    f'bot_token = "{server.token}"',
                    f"chat_id = {CHAT}",
                    f'api_url = "{server.base_url}"',
                    f"forward_coalesce_s = {coalesce}",
                ]
            )
            + "\n"
        )
        env = dict(os.environ)
        for key in ("XDG_RUNTIME_DIR", "NOTIFY_SOCKET"):
            env.pop(key, None)
        env.update(
            PYTHONPATH=str(REPO),
            PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            FAKE_CODEX_DIR=str(self.state),
            TAKOPI_TELEGRAM_PACING=pacing,
            TAKOPI_LOG_LEVEL="warning",
        )
        self._log = (self.base / "supervisor.log").open("ab")
        argv = [sys.executable, "-m", "takopi.supervisor", "--config", str(config)]
        self.proc = subprocess.Popen(
            [*argv, "--engine", "codex"],
            env=env,
            cwd=self.base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self._ready(), timeout=60)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            log = (self.base / "supervisor.log").read_text()[-3000:]
            raise SystemExit(f"supervisor exited: {log}")
        return any("takopi is ready" in m.text for m in self.server.bot_messages(CHAT))

    def engine_done_times(self) -> dict[str, float]:
        """prompt → when its codex printed turn.completed."""
        state = self.state
        pids: dict[int, str] = {}
        calls = state / "calls.jsonl"
        if calls.exists():
            for line in calls.read_text().splitlines():
                item = json.loads(line)
                pids[item["pid"]] = item["prompt"]
        done: dict[str, float] = {}
        finished = state / "finished.jsonl"
        if finished.exists():
            for line in finished.read_text().splitlines():
                item = json.loads(line)
                if item["pid"] in pids:
                    done[pids[item["pid"]]] = item["t"]
        return done

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _replies(server: BotApiServer, user_id: int) -> list[FakeMessage]:
    return [
        m
        for m in server.bot_messages(CHAT, include_deleted=True)
        if m.reply_to_message_id == user_id
    ]


def _is_final(m: FakeMessage) -> bool:
    return m.text.startswith(("done", "error", "cancelled"))


def prompt_and_wait(server: BotApiServer, text: str, timeout: float = 120.0) -> tuple[Run, int]:
    """Send ``text`` as the user and wait for its final answer."""
    user = server.send_user_message(CHAT, text)
    user_msg = server.message(CHAT, user["message_id"])
    assert user_msg is not None
    run = Run(prompt=text, user_at=user_msg.created_at)
    finals = wait_until(
        lambda: [m for m in _replies(server, user["message_id"]) if _is_final(m)], timeout
    )
    run.final_at = finals[0].created_at
    return run, user["message_id"]


def fill_in(server: BotApiServer, service: Service, runs: list[tuple[Run, int]]) -> list[Run]:
    """First-message times from the fake server, engine-finished times from the codex stamps."""
    done = service.engine_done_times()
    out = []
    for run, user_id in runs:
        replies = sorted(_replies(server, user_id), key=lambda m: m.created_at)
        if replies:
            run.first_at = replies[0].created_at
        run.engine_done_at = done.get(run.prompt)
        out.append(run)
    return out


def latency_runs(server: BotApiServer, service: Service, pairs: int) -> tuple[list[Run], list[Run]]:
    idle: list[tuple[Run, int]] = []
    after: list[tuple[Run, int]] = []
    for i in range(pairs):
        time.sleep(IDLE_S)
        idle.append(prompt_and_wait(server, f"{PROMPT} idle{i}"))
        after.append(prompt_and_wait(server, f"{PROMPT} after{i}"))
    # let the last progress delete land before the next phase
    time.sleep(IDLE_S)
    return fill_in(server, service, idle), fill_in(server, service, after)


def parallel_runs(server: BotApiServer, service: Service, count: int) -> tuple[list[Run], float]:
    users = []
    started = time.monotonic()
    for i in range(count):
        text = f"{PROMPT} par{i}"
        user = server.send_user_message(CHAT, text)
        msg = server.message(CHAT, user["message_id"])
        assert msg is not None
        users.append((Run(prompt=text, user_at=msg.created_at), user["message_id"]))
    for run, user_id in users:
        finals = wait_until(lambda u=user_id: [m for m in _replies(server, u) if _is_final(m)], 300)
        run.final_at = finals[0].created_at
    return fill_in(server, service, users), time.monotonic() - started


def busy_chat(server: BotApiServer, service: Service, seconds: float, lanes: int = 3) -> list[Run]:
    deadline = time.monotonic() + seconds
    results: list[tuple[Run, int]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def lane(n: int) -> None:
        i = 0
        try:
            while time.monotonic() < deadline:
                # every third run is quick, the rest run a 0.25 s command
                text = f"busy{n}-{i}" if i % 3 == 2 else f"{PROMPT} busy{n}-{i}"
                result = prompt_and_wait(server, text, timeout=300)
                with lock:
                    results.append(result)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return fill_in(server, service, results)


def api_round_trip(server: BotApiServer, samples: int = 30) -> float:
    """Median seconds for one sendMessage to the fake (the floor of any bot write)."""
    import httpx

    server.stop_enforcing_limits()
    chat = CHAT + 1
    server.add_chat(chat)
    times = []
    with httpx.Client() as client:
        url = f"{server.base_url}/bot{server.token}/sendMessage"
        for i in range(samples):
            t = time.perf_counter()
            client.post(url, json={"chat_id": chat, "text": f"rt{i}"}).raise_for_status()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _ms(values: list[float | None]) -> str:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return "n/a"
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return (
        f"median {statistics.median(xs) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f}  "
        f"max {xs[-1] * 1000:7.1f}  (n={len(xs)})"
    )


def _median(values: list[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.median(xs) if xs else None


def _errors_429(server: BotApiServer) -> int:
    return len(server.rate_limited())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--busy-seconds", type=float, default=300.0)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--coalesce", type=float, default=0.0)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()

    print(f"load average at start       : {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians: dict[str, dict[str, float | None]] = {}
    for pacing in ("bucket", "reference"):
        server = BotApiServer(max_poll_timeout=10.0, limits=RateLimits())
        server.start()
        server.add_chat(CHAT)
        service = Service(server, pacing=pacing, coalesce=args.coalesce)
        try:
            idle, after = latency_runs(server, service, args.pairs)
            print(f"\n== pacing={pacing}, forward_coalesce_s={args.coalesce} ==")
            for name, runs in (("idle chat", idle), ("right after a run", after)):
                print(f"{name}:")
                print(f"  message → first bot message : {_ms([r.first for r in runs])}")
                print(f"  message → final answer      : {_ms([r.final for r in runs])}")
                print(f"  engine finished → final     : {_ms([r.after_engine for r in runs])}")
                medians[f"{pacing}/{name}"] = {
                    "first": _median([r.first for r in runs]),
                    "final": _median([r.final for r in runs]),
                    "after_engine": _median([r.after_engine for r in runs]),
                }
            print(f"  429 answers                 : {_errors_429(server)}")

            if pacing == "bucket" and not args.skip_load:
                before = _errors_429(server)
                runs, took = parallel_runs(server, service, args.parallel)
                print(f"{args.parallel} prompts at once in one chat: all finals in {took:.1f} s")
                print(f"  message → first bot message : {_ms([r.first for r in runs])}")
                print(f"  message → final answer      : {_ms([r.final for r in runs])}")
                print(f"  429 answers                 : {_errors_429(server) - before}")
                time.sleep(IDLE_S)
                before = _errors_429(server)
                runs = busy_chat(server, service, args.busy_seconds)
                sends = len(server.calls("sendMessage"))
                print(f"busy chat for {args.busy_seconds:.0f} s (3 users back to back):")
                print(f"  runs finished               : {len(runs)} (sendMessage so far: {sends})")
                print(f"  message → first bot message : {_ms([r.first for r in runs])}")
                print(f"  message → final answer      : {_ms([r.final for r in runs])}")
                print(f"  429 answers                 : {_errors_429(server) - before}")
            if pacing == "bucket":
                floor = api_round_trip(server)
        finally:
            service.stop()
            server.stop()

    print(f"\nfake Bot API sendMessage round trip (floor): {floor * 1000:.1f} ms")
    print("ratio bucket / reference (medians):")
    for name in ("idle chat", "right after a run"):
        new, old = medians[f"bucket/{name}"], medians[f"reference/{name}"]
        parts = []
        for key in ("first", "final", "after_engine"):
            a, b = new[key], old[key]
            parts.append(f"{key} {a / b:.2f}" if a is not None and b else f"{key} n/a")
        print(f"  {name:18}: " + ", ".join(parts))
    print(f"load average at end         : {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
