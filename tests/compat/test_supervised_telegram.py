"""Published plugins behind the real Telegram transport, all in worker processes.

Supervisor (repo venv, Python 3.11) + the built-in telegram transport against the fake Bot API
on 127.0.0.1; the telegram transport worker, the kimi engine worker and the /cron command
worker all run under the Python 3.13 compat venv (one venv holding every plugin).
``/cron run /kimi ...`` goes: chat -> telegram worker -> cron worker (``handle``) ->
``ctx.runtime.resolve_message`` and ``ctx.executor.run_one(mode="capture")`` routed back to the
telegram worker's executor -> kimi engine worker -> fake ``kimi`` CLI -> captured answer ->
``ctx.executor.send`` -> a reply in the chat.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.plugins import venv_python
from tests.fakes.bot_api import BotApiServer
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

CHAT = 1001
FAKE_CLI = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "fake_agent_cli.py"
KIMI_RESUME = re.compile(r"kimi --resume (kimi-[0-9a-f]+)")


@pytest.fixture
def bot_server() -> Iterator[BotApiServer]:
    server = BotApiServer(max_poll_timeout=0.5)
    server.start()
    server.add_chat(CHAT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["py313", "own"], ids=["telegram-on-3.13", "telegram-on-own-python"])
def harness(
    request: pytest.FixtureRequest,
    supervisor: SupervisorHarness,
    compat_venvs: Path,
    bot_server: BotApiServer,
) -> Iterator[SupervisorHarness]:
    base = supervisor.base
    bin_dir = base / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kimi"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} kimi "$@"\n')
    wrapper.chmod(0o755)
    py313 = venv_python(compat_venvs, "py313")
    # The transport in the plugins' venv, or on the supervisor's own interpreter: there it
    # must still see cron (installed only in the 3.13 venv) as a command, via the supervisor.
    supervisor.telegram_on_313 = request.param == "py313"  # type: ignore[attr-defined]
    telegram_python = (
        f'[plugins.telegram]\npython = "{py313}"' if supervisor.telegram_on_313 else ""
    )  # type: ignore[attr-defined]
    supervisor.config_path.write_text(
        textwrap.dedent(
            f"""\
            transport = "telegram"
            default_engine = "kimi"

            [transports.telegram]
            bot_token = "{bot_server.token}"
            chat_id = {CHAT}
            api_url = "{bot_server.base_url}"
            forward_coalesce_s = 0

            [plugins.kimi]
            python = "{py313}"

            {telegram_python}

            [plugins.cron]
            python = "{py313}"

            [supervisor]
            ping_interval = 0.5
            ping_timeout = 5.0
            shutdown_grace = 2.0
            """
        )
    )
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "FAKE_CLI_LOG": str(base / "fake-cli.jsonl"),
        # No TAKOPI_CONFIG_PATH and an empty home: workers must read --config, not
        # ~/.takopi/takopi.toml (argument-less load_settings() in telegram's check_setup).
        "HOME": str(base / "home"),
        "TAKOPI_CONFIG_PATH": "",
    }
    (base / "home").mkdir()
    supervisor.start(engines=("kimi",), env=env, wait_ready=False)
    try:
        bot_server.wait_for(
            lambda: any("takopi is ready" in m.text for m in bot_server.bot_messages(CHAT)),
            timeout=60,
        )
    except Exception as exc:
        raise AssertionError(f"telegram never became ready: {exc}\n{supervisor.log()}") from exc
    yield supervisor


def replies_to(server: BotApiServer, message_id: int) -> list[str]:
    return [m.text for m in server.bot_messages(CHAT) if m.reply_to_message_id == message_id]


def test_chat_message_runs_the_kimi_plugin_and_cron_runs_it_via_executor(
    harness: SupervisorHarness, bot_server: BotApiServer
) -> None:
    ready = next(m.text for m in bot_server.bot_messages(CHAT) if "takopi is ready" in m.text)
    assert "kimi" in ready

    user = bot_server.send_user_message(CHAT, "hello kimi")
    final = wait_until(
        lambda: [t for t in replies_to(bot_server, user["message_id"]) if t.startswith("done")],
        timeout=60,
    )[0]
    assert "answer to: hello kimi" in final
    assert KIMI_RESUME.search(final), final

    cmd = bot_server.send_user_message(CHAT, "/cron run /kimi summarise the repo")
    answer = wait_until(
        lambda: [t for t in replies_to(bot_server, cmd["message_id"]) if "summarise the repo" in t],
        timeout=60,
    )
    # capture mode returns the run's final rendered message (header, answer, resume line)
    # without posting progress; cron posts it as its reply.
    assert len(answer) == 1, replies_to(bot_server, cmd["message_id"])
    assert answer[0].startswith("done · kimi"), answer
    assert "answer to: summarise the repo" in answer[0]
    assert KIMI_RESUME.search(answer[0]), answer
    assert replies_to(bot_server, cmd["message_id"]) == answer  # nothing else (no progress)
    for name in ("command:cron", "engine:kimi"):
        assert harness.worker(name)["python"].startswith("3.13"), name
    own = f"{sys.version_info.major}.{sys.version_info.minor}."
    telegram = harness.worker("transport:telegram")["python"]
    assert telegram.startswith("3.13." if harness.telegram_on_313 else own), telegram
    assert harness.stop() == 0
    assert_no_leftovers(harness)
