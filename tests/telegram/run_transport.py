"""Run the telegram backend's ``build_and_run`` in this process (used by process tests).

Usage: ``python -m tests.telegram.run_transport <config.toml>`` — the config's
``[transports.telegram]`` is used as is; the runtime has one engine, ``codex`` (whatever
``codex`` is on PATH). Logging follows the ``TAKOPI_LOG_*`` environment variables.
Tests start it with :func:`transport_process`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner
from takopi.settings import load_settings
from takopi.telegram.backend import BACKEND
from takopi.transport_runtime import TransportRuntime

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TransportProcess:
    """A running ``run_transport``; :attr:`logs` is filled when it stopped."""

    proc: subprocess.Popen[bytes]
    log_file: Path
    logs: str = ""


@contextmanager
def transport_process(
    tmp_path: Path, server: Any, chat_id: int, **telegram_settings: str
) -> Iterator[TransportProcess]:
    """Run the backend against the fake Bot API ``server`` (configured for ``chat_id``)
    in a process that logs JSON at
    debug level (to a file and its output); ``telegram_settings`` are TOML values added to
    ``[transports.telegram]``. Yields once "takopi is ready" was sent; on exit the process
    gets SIGTERM and its file log and output are collected in ``logs``."""
    config = tmp_path / "takopi.toml"
    lines = [
        'transport = "telegram"',
        'default_engine = "codex"',
        "[transports.telegram]",
        f'bot_token = "{server.token}"',
        f"chat_id = {chat_id}",
        f'api_url = "{server.base_url}"',
        "forward_coalesce_s = 0",
    ]
    lines += [f"{key} = {value}" for key, value in telegram_settings.items()]
    config.write_text("\n".join(lines) + "\n")
    log_file = tmp_path / "takopi.log"
    env = dict(os.environ)
    env.update(
        {
            "TAKOPI_LOG_FILE": str(log_file),
            "TAKOPI_LOG_LEVEL": "debug",
            "TAKOPI_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.pop("OPENAI_API_KEY", None)
    running = TransportProcess(
        subprocess.Popen(
            [sys.executable, "-m", "tests.telegram.run_transport", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ),
        log_file,
    )
    try:
        server.wait_for(
            lambda: any("takopi is ready" in m.text for m in server.bot_messages(chat_id)),
            timeout=30,
        )
        yield running
    finally:
        running.proc.send_signal(signal.SIGTERM)
        out, _ = running.proc.communicate(timeout=20)
        file_log = log_file.read_text() if log_file.exists() else ""
        running.logs = file_log + out.decode(errors="replace")


def main() -> None:
    config_path = Path(sys.argv[1])
    settings, config_path = load_settings(config_path)
    router = AutoRouter(
        [RunnerEntry(engine="codex", runner=build_runner({}, config_path))], default_engine="codex"
    )
    runtime = TransportRuntime(router=router, config_path=config_path)
    transport_config = settings.transport_config("telegram", config_path=config_path)
    BACKEND.build_and_run(
        transport_config=transport_config,
        config_path=config_path,
        runtime=runtime,
        final_notify=True,
        default_engine_override=None,
    )


if __name__ == "__main__":
    main()
