"""Soak + chaos (issue #14): the whole system — supervisor, telegram transport worker against
the fake Bot API, codex engine worker with the scripted ``codex`` — takes N messages over M
chats while a seeded chaos thread SIGKILLs engine and transport workers at random.

What a run yields (:class:`SoakReport`): per user message, the bot's terminal replies to it
(``done``/``error``/``cancelled``/``interrupted``, matched by ``reply_to_message_id``), the
kills made, and the supervisor's RSS after warm-up and at the end. Used by
``tests/process/test_soak.py`` (small, bounded) and ``bench/bench_soak.py`` (500/20).

Finals are edits of the progress message (``--no-final-notify``) unless ``final_notify``:
only then is every terminal delivery idempotent. A notifying final is a new message, and
the Bot API cannot send one idempotently: a transport killed after Telegram took it but
before the supervisor journaled the ack leaves the outcome pending, and the successor sends
it again (at-least-once; ``bench_soak.py --final-notify`` measures how often).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from takopi.supervisor.control import request
from takopi.supervisor.paths import resolve_paths
from tests.fakes.bot_api import BotApiServer
from tests.support.processes import MARK, assert_gone, kill_marked, marked_processes, terminate
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
FAKE_CODEX = REPO / "tests" / "telegram" / "fake_codex.py"
GROUP = -100777
TERMINAL = ("done", "error", "cancelled", "interrupted")
_LEFTOVER_KEYS = ("runs", "pending_deliveries", "open_intakes")


@dataclass
class SoakReport:
    seed: int
    messages: int
    chats: int
    kills: dict[str, int] = field(default_factory=lambda: {"engine": 0, "transport": 0})
    replies: dict[int, list[str]] = field(default_factory=dict)
    """Terminal reply texts per (chat, user message) key index."""
    rss_warm: int = 0
    rss_end: int = 0
    elapsed: float = 0.0
    stop_code: int | None = None
    leftovers: dict[str, int] = field(default_factory=dict)
    """Supervisor status once quiet: runs in flight, deliveries owed, intakes open."""
    stray_processes: int = 0
    """Processes of this system still alive after the supervisor stopped."""

    @property
    def orphans(self) -> int:
        """Runs or messages left without an answer, plus stray processes."""
        return sum(self.leftovers.values()) + self.stray_processes

    @property
    def missing(self) -> list[int]:
        return [i for i, texts in self.replies.items() if not texts]

    @property
    def duplicated(self) -> dict[int, list[str]]:
        return {i: texts for i, texts in self.replies.items() if len(texts) > 1}

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for texts in self.replies.values():
            for text in texts:
                word = text.split()[0]
                counts[word] = counts.get(word, 0) + 1
        return counts

    def summary(self) -> str:
        mib = 1024 * 1024
        return (
            f"seed={self.seed} messages={self.messages} chats={self.chats} "
            f"kills={self.kills} replies={sum(len(t) for t in self.replies.values())} "
            f"by_status={self.by_status()} missing={len(self.missing)} "
            f"duplicated={len(self.duplicated)} leftovers={self.leftovers} "
            f"stray_processes={self.stray_processes} rss_warm={self.rss_warm / mib:.1f}MiB "
            f"rss_end={self.rss_end / mib:.1f}MiB elapsed={self.elapsed:.1f}s"
        )


def _terminal(text: str) -> bool:
    return bool(text.split()) and text.split()[0] in TERMINAL


class Soak:
    """One system under chaos. Use as a context manager; :meth:`run` does the work."""

    def __init__(
        self,
        *,
        messages: int,
        chats: int,
        seed: int | None = None,
        kill_every: tuple[float, float] = (0.6, 1.8),
        send_every: tuple[float, float] = (0.02, 0.25),
        final_notify: bool = False,
    ) -> None:
        self.messages = messages
        self.chats = chats
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.rng = random.Random(self.seed)
        self.kill_every = kill_every
        self.send_every = send_every
        self.final_notify = final_notify
        self.base = Path("/tmp") / f"tks-{uuid.uuid4().hex[:8]}"  # ipc path length limit
        self.mark = uuid.uuid4().hex
        self.server = BotApiServer(max_poll_timeout=0.5)
        self.users = [5001 + i for i in range(max(chats, 1))]
        # Chat 0 is a group where every user may write; the others are users' private chats.
        self.chat_ids = [GROUP, *self.users[1:chats]]
        self.proc: subprocess.Popen[bytes] | None = None
        self.sent: list[tuple[int, int]] = []
        """(chat id, user message id) of every message sent, in order."""
        self._chaos_stop = threading.Event()
        self._log: Any = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Soak:
        self.base.mkdir()
        self.server.start()
        for chat in self.chat_ids:
            self.server.add_chat(chat)
        self._start_supervisor()
        return self

    def __exit__(self, *exc: object) -> None:
        self._chaos_stop.set()
        self.stop()
        kill_marked(self.mark)
        self.server.stop()
        if self._log is not None:
            self._log.close()
        if os.environ.get("TAKOPI_SOAK_KEEP"):
            print(f"soak files kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def _start_supervisor(self) -> None:
        bin_dir = self.base / "bin"
        bin_dir.mkdir()
        state = self.base / "codex-state"
        state.mkdir()
        script = bin_dir / "codex"
        script.write_text(f"#!{sys.executable}\n" + FAKE_CODEX.read_text())
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        config = self.base / "takopi.toml"
        config.write_text(
            "\n".join(
                [
                    'transport = "telegram"',
                    'default_engine = "codex"',
                    "[transports.telegram]",
                    f'bot_token = "{self.server.token}"',
                    f"chat_id = {GROUP}",
                    f'api_url = "{self.server.base_url}"',
                    f"allowed_user_ids = {self.users}",
                    "forward_coalesce_s = 0",
                    "media_group_debounce_s = 0",
                    # Messages that arrive while the transport restarts are run, not
                    # answered with the offline notice: every message is accepted.
                    'offline_backlog = "run"',
                    "[supervisor]",
                    "ping_interval = 0.5",
                    "ping_timeout = 2.0",
                    "[supervisor.restart]",
                    "stable_after = 0.3",
                    "max_restarts = 100000",
                ]
            )
            + "\n"
        )
        self.config_path = config
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = str(REPO)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["FAKE_CODEX_DIR"] = str(state)
        env[MARK] = self.mark
        self._log = (self.base / "supervisor.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "takopi.supervisor",
                "--config",
                str(config),
                "--engine",
                "codex",
                *([] if self.final_notify else ["--no-final-notify"]),
            ],
            env=env,
            cwd=self.base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: self._alive() and self._state("transport") == "ready",
            60,
            "the telegram transport is ready",
        )

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"supervisor exited: {self.log()}")
        return True

    def log(self) -> str:
        try:
            return (self.base / "supervisor.log").read_text()[-6000:]
        except OSError:
            return ""

    def status(self) -> dict[str, Any]:
        socket_path = resolve_paths(self.config_path, create=False).control_socket
        response = request(socket_path, "status", {})
        assert response["ok"], response
        return response["result"]  # type: ignore[no-any-return]

    def _worker(self, kind: str) -> dict[str, Any] | None:
        try:
            return next(w for w in self.status()["workers"] if w["kind"] == kind)
        except (OSError, ValueError, StopIteration, AssertionError):
            return None

    def _state(self, kind: str) -> str | None:
        worker = self._worker(kind)
        return worker["state"] if worker else None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        return self.proc.returncode

    # ------------------------------------------------------------------ the soak

    def _chaos(self, report: SoakReport) -> None:
        """Kill a random worker (engine or transport) once it is ready, again and again."""
        rng = random.Random(self.rng.randrange(2**32))
        while not self._chaos_stop.wait(rng.uniform(*self.kill_every)):
            kind = rng.choice(("engine", "transport"))
            worker = self._worker(kind)
            if worker is None or worker["state"] != "ready" or not worker.get("pid"):
                continue
            try:
                os.kill(worker["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            report.kills[kind] += 1

    def _prompt(self, index: int) -> str:
        # A third of the runs last long enough to be mid-flight when a worker dies.
        if self.rng.random() < 0.33:
            return f"sleep {self.rng.choice((0.2, 0.5, 1.0))} m{index}"
        return f"m{index}"

    def _replies(self) -> dict[int, list[str]]:
        by_key: dict[tuple[int, int], list[str]] = {key: [] for key in self.sent}
        for chat in self.chat_ids:
            for message in self.server.bot_messages(chat):
                key = (chat, message.reply_to_message_id or 0)
                if key in by_key and _terminal(message.text):
                    by_key[key].append(message.text)
        return {i: by_key[key] for i, key in enumerate(self.sent)}

    def _rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def run(self, *, reply_timeout: float = 120.0, settle: float = 2.0) -> SoakReport:
        """Send every message under chaos, wait for every terminal reply, stop; the report."""
        report = SoakReport(seed=self.seed, messages=self.messages, chats=self.chats)
        started = time.monotonic()
        chaos = threading.Thread(target=self._chaos, args=(report,), daemon=True)
        warm_at = max(1, self.messages // 5)
        chaos.start()
        try:
            for index in range(self.messages):
                chat = self.chat_ids[index % len(self.chat_ids)]
                user = self.users[index % len(self.users)] if chat == GROUP else chat
                raw = self.server.send_user_message(chat, self._prompt(index), user_id=user)
                self.sent.append((chat, raw["message_id"]))
                if index + 1 == warm_at:
                    # Warm-up: the first fifth answered, caches and pools at their size.
                    with contextlib.suppress(AssertionError):  # a lost one shows at the end
                        wait_until(
                            lambda: self._alive() and all(self._replies().values()),
                            reply_timeout / 4,
                            "warm-up replies",
                        )
                    report.rss_warm = self._rss()
                time.sleep(self.rng.uniform(*self.send_every))
        finally:
            self._chaos_stop.set()
            chaos.join(10)

        def all_answered() -> bool:
            self._alive()
            return all(self._replies().values())

        try:
            wait_until(all_answered, reply_timeout, "a terminal reply to every message")
        except AssertionError:
            report.replies = self._replies()
            with contextlib.suppress(OSError, ValueError, AssertionError):
                report.leftovers = self._leftovers()
            report.elapsed = time.monotonic() - started
            return report
        # Quiet: no run in flight, nothing owed, no message taken but unanswered; then look
        # for late duplicates. What is left after a bounded wait is reported (orphans).
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not any(self._leftovers().values()), 60, "nothing left open")
        time.sleep(settle)
        report.leftovers = self._leftovers()
        report.rss_end = self._rss()
        report.replies = self._replies()
        report.elapsed = time.monotonic() - started
        report.stop_code = self.stop()
        with contextlib.suppress(AssertionError):
            assert_gone(self.mark, 10)
        report.stray_processes = len(marked_processes(self.mark))
        return report

    def _leftovers(self) -> dict[str, int]:
        status = self.status()
        return {key: int(status.get(key) or 0) for key in _LEFTOVER_KEYS}


__all__ = ["GROUP", "Soak", "SoakReport"]
