"""Fixtures for the tests that run INSIDE a compat venv (its own interpreter, the published
plugins installed next to this repo's takopi). The outer suite (``tests/compat/test_*.py``)
starts them as ``<venv>/bin/python -m pytest tests/compat/inner/<module>`` with
``TAKOPI_COMPAT_INNER=1``; without that variable these modules are not collected, since the
plugins are not importable from the repo's own venv (and most need Python >= 3.12)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INNER = os.environ.get("TAKOPI_COMPAT_INNER") == "1"
collect_ignore_glob = [] if INNER else ["test_*.py"]

FAKE_CLI = Path(__file__).resolve().parents[2] / "fixtures" / "compat" / "fake_agent_cli.py"

#: Name on PATH -> dialect of the fake CLI.
FAKE_CLIS = {"kimi": "kimi", "qodercli": "qoder", "agent": "cursor"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeCli:
    """The fake agent CLIs on PATH and the log of their invocations."""

    def __init__(self, bin_dir: Path, log: Path) -> None:
        self.bin_dir = bin_dir
        self.log = log

    def invocations(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCli]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, dialect in FAKE_CLIS.items():
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} {dialect} "$@"\n')
        wrapper.chmod(0o755)
    log = tmp_path / "fake-cli.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    yield FakeCli(bin_dir, log)


def _executor_class() -> type:
    # Imported lazily: the outer suite imports this conftest without the compat venv.
    from dataclasses import dataclass, field

    from takopi.api import (
        CommandExecutor,
        MessageRef,
        RenderedMessage,
        RunRequest,
        RunResult,
    )

    @dataclass(slots=True)
    class RecordingExecutor(CommandExecutor):
        """A transport-style executor (a slotted dataclass subclassing the Protocol, as the
        slack/discord plugins write theirs) that records sends and answers runs with
        ``run_result(request)`` (default: ``"ran: <prompt>"``)."""

        channel_id: int = 42
        sent: list[tuple[str, MessageRef | None, bool]] = field(default_factory=list)
        runs: list[tuple[RunRequest, str]] = field(default_factory=list)
        run_result: Any = None
        _next_id: int = 1000

        async def send(
            self,
            message: RenderedMessage | str,
            *,
            reply_to: MessageRef | None = None,
            notify: bool = True,
        ) -> MessageRef | None:
            text = message.text if isinstance(message, RenderedMessage) else message
            self.sent.append((text, reply_to, notify))
            self._next_id += 1
            return MessageRef(channel_id=self.channel_id, message_id=self._next_id)

        async def run_one(self, request: RunRequest, *, mode: str = "emit") -> RunResult:
            self.runs.append((request, mode))
            if self.run_result is not None:
                return await self.run_result(request)  # type: ignore[no-any-return]
            return RunResult(
                engine=request.engine or "demo",
                message=RenderedMessage(text=f"ran: {request.prompt}"),
            )

        async def run_many(
            self, requests: Any, *, mode: str = "emit", parallel: bool = False
        ) -> list[RunResult]:
            return [await self.run_one(request, mode=mode) for request in requests]

    return RecordingExecutor


@pytest.fixture
def executor() -> Any:
    return _executor_class()()
