"""Fixtures for the CLI tests: isolated HOME, the CLI entry points, a fake Bot API server and
a real supervisor running the test plugins in ``tests/cli/plugin_dist``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bot_api import BotApiServer
from tests.support.waiting import wait_until

PLUGIN_DIST = Path(__file__).parent / "plugin_dist"
BIN = Path(sys.executable).parent
TAKOPI = str(BIN / "takopi")
TAKOPICTL = str(BIN / "takopictl")
REAL_ENGINE_CLIS = ("codex", "claude", "opencode", "pi")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def clean_path() -> str:
    """PATH without any directory holding a real agent CLI (so the demo rule is predictable)."""
    keep = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and not any((Path(entry) / cli).exists() for cli in REAL_ENGINE_CLIS):
            keep.append(entry)
    return os.pathsep.join(keep)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def make_env(home: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: own HOME, test plugins importable, no real agents."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAKOPI", "XDG_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(
        HOME=str(home),
        PATH=clean_path(),
        PYTHONPATH=str(PLUGIN_DIST),
        TAKOPI_LOG_COLOR="0",
        TAKOPI__DEMO__DELAY="0",
    )
    return env


@pytest.fixture
def cli_env(home: Path) -> dict[str, str]:
    return make_env(home)


def run_cli(
    args: list[str],
    env: dict[str, str],
    *,
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``takopi``/``takopictl`` (first arg) and capture its output."""
    return subprocess.run(
        args,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def bot_api() -> Iterator[BotApiServer]:
    server = BotApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SupervisorProc:
    """A real supervisor (``python -m takopi.supervisor``) with the clitest engine and the
    clirec transport; messages go in as files, what it sends is read from ``outbox.jsonl``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.config = root / "takopi.toml"
        self.dir = root / "chat"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "supervisor.log"
        self._seq = 0

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(
            'transport = "clirec"\n'
            'default_engine = "clitest"\n'
            f"[transports.clirec]\ndir = {json.dumps(str(self.dir))}\n" + extra
        )

    def start(self, *, args: list[str] | None = None) -> SupervisorProc:
        if not self.config.exists():
            self.write_config()
        argv = args or [
            sys.executable,
            "-m",
            "takopi.supervisor",
            "--config",
            str(self.config),
            "--engine",
            "clitest",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: self.ready_count() >= 1, 60, "the transport to be ready")
        return self

    def outbox(self) -> list[dict[str, Any]]:
        path = self.dir / "outbox.jsonl"
        if not path.exists():
            return []
        items = []
        for line in path.read_text().splitlines():
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
        return items

    def ready_count(self) -> int:
        return sum(1 for item in self.outbox() if item.get("op") == "ready")

    def send(self, text: str, message_id: int | None = None) -> int:
        self._seq += 1
        message_id = message_id or 100 + self._seq
        inbox = self.dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        tmp = inbox / f".{self._seq}.tmp"
        tmp.write_text(json.dumps({"channel_id": 7, "message_id": message_id, "text": text}))
        tmp.rename(inbox / f"{self._seq:04d}.json")
        return message_id

    def replies_to(self, message_id: int) -> list[dict[str, Any]]:
        return [
            item
            for item in self.outbox()
            if item.get("op") == "send" and item.get("reply_to") == message_id
        ]

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cli([TAKOPICTL, "--config", str(self.config), *args], self.env, timeout=timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def shared_supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProc]:
    """One supervisor for a whole test module (tests must leave it running and healthy)."""
    root = tmp_path_factory.mktemp("shared-sup")
    home = root / "home"
    home.mkdir()
    sup = SupervisorProc(root, make_env(home))
    try:
        yield sup.start()
    finally:
        sup.stop()


@pytest.fixture
def supervisor_factory(
    tmp_path: Path, cli_env: dict[str, str]
) -> Iterator[Callable[[], SupervisorProc]]:
    made: list[SupervisorProc] = []

    def make() -> SupervisorProc:
        root = tmp_path / f"sup{len(made)}"
        root.mkdir()
        sup = SupervisorProc(root, cli_env)
        made.append(sup)
        return sup

    try:
        yield make
    finally:
        for sup in made:
            sup.stop()


def user_writes_when_polled(
    server: BotApiServer, chat_id: int, text: str = "/start", user_id: int | None = None
) -> threading.Thread:
    """Send a user message as soon as someone long-polls getUpdates (after the backlog drain)."""

    seen = len(server.calls("getUpdates"))

    def worker() -> None:
        server.wait_for(
            lambda: any(int(c.get("timeout") or 0) > 0 for c in server.calls("getUpdates")[seen:]),
            timeout=30,
        )
        server.send_user_message(chat_id, text, user_id=user_id)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    return thread


class PtyProcess:
    """A child process whose stdin/stdout/stderr are a pseudo-terminal it controls."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        import fcntl
        import pty
        import termios

        master, slave = pty.openpty()

        def make_controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            preexec_fn=make_controlling_tty,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.output = ""
        self._pos = 0

    def _read(self, timeout: float) -> bool:
        import select

        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data.decode("utf-8", "replace")
        return bool(data)

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Wait for ``text`` after the previous match; returns the output up to it."""
        deadline = time.monotonic() + timeout
        while text not in self.output[self._pos :]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (
                not self._read(min(remaining, 0.5)) and self.proc.poll() is not None
            ):
                if text in self.output[self._pos :]:
                    break
                raise AssertionError(f"did not see {text!r}; output so far:\n{self.output}")
        index = self.output.index(text, self._pos) + len(text)
        seen = self.output[self._pos : index]
        self._pos = index
        return seen

    def sendline(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)
