"""Fixtures for the Telegram transport tests: the fake Bot API, a fake ``codex`` CLI on PATH,
and a harness that runs the real transport (``run_telegram``) on its own thread and loop,
like the transport worker does."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from takopi.projects import ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner
from takopi.settings import TelegramTransportSettings
from takopi.telegram.backend import run_telegram
from takopi.transport_runtime import TransportRuntime
from tests.fakes.bot_api import BotApiServer, FakeMessage

CHAT = 1001  # the configured private chat (user 1001)
HERE = Path(__file__).parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    srv = BotApiServer(max_poll_timeout=0.5)
    srv.start()
    srv.add_chat(CHAT)
    try:
        yield srv
    finally:
        srv.stop()


class FakeCodex:
    """The fake ``codex`` on PATH: its call log and its gates."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir

    def calls(self) -> list[dict[str, Any]]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def open_gate(self, name: str) -> None:
        (self.dir / name).write_text("open")


def install_fake_codex(root: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCodex:
    """Put the fake ``codex`` CLI (``fake_codex.py``) in ``root/bin``, first on ``PATH``, with
    its state in ``root/codex-state``."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    state = root / "codex-state"
    state.mkdir()
    script = bin_dir / "codex"
    script.write_text(f"#!{sys.executable}\n" + (HERE / "fake_codex.py").read_text())
    script.chmod(script.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CODEX_DIR", str(state))
    return FakeCodex(state)


@pytest.fixture
def fake_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCodex:
    return install_fake_codex(tmp_path, monkeypatch)


def make_runtime(config_path: Path, projects: ProjectsConfig | None = None) -> TransportRuntime:
    runner = build_runner({}, config_path)
    router = AutoRouter([RunnerEntry(engine="codex", runner=runner)], default_engine="codex")
    return TransportRuntime(router=router, projects=projects, config_path=config_path)


class _RunnerWithoutCli:
    """The runner side of an engine that cannot run (its entry says why); never started."""

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def is_resume_line(self, line: str) -> bool:
        return False

    def format_resume(self, token: Any) -> str:  # pragma: no cover - never runs
        return ""

    def extract_resume(self, text: str | None) -> None:
        return None


def missing_claude_entry() -> RunnerEntry:
    """A configured ``claude`` engine whose CLI is not installed."""
    return RunnerEntry(
        engine="claude",
        runner=_RunnerWithoutCli("claude"),
        status="missing_cli",
        issue="claude not found on PATH",
    )


class Harness:
    """Runs the telegram transport against the fake server on a background event loop."""

    def __init__(
        self,
        server: BotApiServer,
        tmp_path: Path,
        *,
        runtime: Any = None,
        final_notify: bool = True,
        real_pacing: bool = False,
        **settings: Any,
    ) -> None:
        self.server = server
        self.config_path = tmp_path / "takopi.toml"
        self.runtime = runtime if runtime is not None else make_runtime(self.config_path)
        values: dict[str, Any] = {
            "bot_token": server.token,
            "chat_id": CHAT,
            "api_url": server.base_url,
            "forward_coalesce_s": 0,
        }
        values.update(settings)
        self.settings = TelegramTransportSettings.model_validate(values)
        self.final_notify = final_notify
        # Telegram's pacing (1 s / 3 s) is covered by the outbox tests and the process tests;
        # here it is scaled down (same private/group ratio) to keep the suite fast.
        self.interval_for = (
            None if real_pacing else (lambda c: 0.3 if c is not None and c < 0 else 0.1)
        )
        self._stack = ExitStack()
        self._future: Future[Any] | None = None

    def start(self, *, wait_ready: bool = True) -> Harness:
        portal = self._stack.enter_context(start_blocking_portal(backend="asyncio"))
        self._future = portal.start_task_soon(
            partial(
                run_telegram,
                self.settings,
                runtime=self.runtime,
                config_path=self.config_path,
                final_notify=self.final_notify,
                poll_timeout_s=1,
                **({"interval_for": self.interval_for} if self.interval_for else {}),
            )
        )
        if wait_ready:
            self.wait_bot_message(self.settings.chat_id, lambda m: "takopi is ready" in m.text)
            # the loop polls right after the startup message; give it its first poll
            self.server.wait_for(lambda: self.server.calls("getUpdates"), timeout=10)
        return self

    def stop(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.cancel()
        self._stack.close()
        if future is not None and future.done() and not future.cancelled():
            exc = future.exception()
            if exc is not None:
                raise exc

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------
    def wait_bot_message(
        self,
        chat_id: int,
        predicate: Callable[[FakeMessage], bool],
        *,
        timeout: float = 20.0,
        include_deleted: bool = False,
    ) -> FakeMessage:
        def find() -> FakeMessage | None:
            for m in self.server.bot_messages(chat_id, include_deleted=include_deleted):
                if predicate(m):
                    return m
            return None

        return self.server.wait_for(find, timeout=timeout)

    def reply_to(
        self,
        chat_id: int,
        user_msg_id: int,
        *,
        text: str | None = None,
        contains: str = "",
        prefix: str | tuple[str, ...] = "",
        timeout: float = 20.0,
    ) -> FakeMessage:
        """The first bot reply to a user message whose text is ``text`` (when given),
        contains ``contains`` and starts with ``prefix``."""
        return self.wait_bot_message(
            chat_id,
            lambda m: (
                m.reply_to_message_id == user_msg_id
                and (text is None or m.text == text)
                and contains in m.text
                and m.text.startswith(prefix)
            ),
            timeout=timeout,
        )

    def final_for(self, chat_id: int, user_msg_id: int, *, timeout: float = 20.0) -> FakeMessage:
        """The terminal (done/error) reply to a user message."""
        return self.reply_to(chat_id, user_msg_id, prefix=("done", "error"), timeout=timeout)


@pytest.fixture
def harness_factory(server: BotApiServer, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kwargs: Any) -> Harness:
        h = Harness(server, tmp_path, **kwargs)
        made.append(h)
        return h

    try:
        yield make
    finally:
        for h in made:
            h.stop()


class RecordingLogger:
    """Stands in for a module's structlog logger and records ``(level, event, fields)``."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, **fields: Any) -> None:
        self.records.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._record("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._record("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._record("exception", event, **fields)

    def bind(self, **_fields: Any) -> RecordingLogger:
        return self

    def events(self, event: str) -> list[dict[str, Any]]:
        return [fields for _level, name, fields in self.records if name == event]


@pytest.fixture
def log_capture(monkeypatch: pytest.MonkeyPatch) -> RecordingLogger:
    """Record what the telegram modules (and the state-file helper) log.

    takopi's module loggers are bound when imported, so the test swaps them instead of
    reconfiguring structlog (the token-redaction test uses a real process and log file)."""
    import importlib
    import pkgutil

    import takopi.telegram
    import takopi.utils.json_state

    rec = RecordingLogger()
    modules = [
        importlib.import_module(f"takopi.telegram.{info.name}")
        for info in pkgutil.iter_modules(takopi.telegram.__path__)
    ]
    for module in [*modules, takopi.utils.json_state]:
        if not hasattr(module, "log"):
            continue
        monkeypatch.setattr(module, "log", rec)
    return rec
