"""Published plugins installed by ``takopi plugins install`` and run from a Python 3.11 takopi.

takopi-cron 0.1.0 and takopi-engine-kimi 0.1.0 come from PyPI (pip / uv caches make repeated
runs cheap). They declare Requires-Python >=3.14 and use PEP 695 syntax (3.12+): with no 3.14
installed, ``install`` refuses and names the override; with ``--python 3.13
--ignore-requires-python`` each gets its own 3.13 venv holding this takopi, and
``[plugins.<id>] python`` for its entry points. Then the real system runs them: supervisor
(3.11) + telegram transport against the fake Bot API + the kimi engine worker and the /cron
command worker in their managed venvs + the fake ``kimi`` CLI:

- ``/kimi ...`` answers with kimi's resume line;
- ``/model set kimi <m>`` reaches the runner (the CLI gets ``--model <m>``);
- ``/cron start <hours> /kimi tick`` keeps ticking in the background after ``handle``
  returned, until ``/cron stop``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.fakes.bot_api import BotApiServer
from tests.plugin_envs.conftest import TAKOPI, make_fake_pyenv
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

CHAT = 1001
FAKE_CLI = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "fake_agent_cli.py"
KIMI_RESUME = re.compile(r"kimi --resume (kimi-[0-9a-f]+)")
PLUGINS = ("takopi-cron==0.1.0", "takopi-engine-kimi==0.1.0")


@pytest.fixture
def bot_server() -> Iterator[BotApiServer]:
    server = BotApiServer(max_poll_timeout=0.5)
    server.start()
    server.add_chat(CHAT)
    try:
        yield server
    finally:
        server.stop()


def plugins_cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TAKOPI, "plugins", *args, "--config-path", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def replies_to(server: BotApiServer, message_id: int) -> list[str]:
    return [m.text for m in server.bot_messages(CHAT) if m.reply_to_message_id == message_id]


def final_reply(server: BotApiServer, message_id: int) -> str:
    finals = wait_until(
        lambda: [
            t for t in replies_to(server, message_id) if t.startswith(("done", "error", "cancel"))
        ],
        timeout=60,
    )
    return str(finals[0])


def test_install_then_kimi_model_and_cron_from_a_311_takopi(
    supervisor: SupervisorHarness, bot_server: BotApiServer, tmp_path: Path
) -> None:
    base = supervisor.base
    config = supervisor.config_path
    config.write_text(
        textwrap.dedent(
            f"""\
            transport = "telegram"
            default_engine = "kimi"

            [transports.telegram]
            bot_token = "{bot_server.token}"
            chat_id = {CHAT}
            api_url = "{bot_server.base_url}"
            forward_coalesce_s = 0

            [supervisor]
            ping_interval = 0.5
            ping_timeout = 5.0
            shutdown_grace = 2.0
            """
        )
    )
    original = config.read_text()
    empty_bin = tmp_path / "no-python"
    empty_bin.mkdir()
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKOPI", "VIRTUAL_ENV"))}
    cli_env.update(
        PYENV_ROOT=str(make_fake_pyenv(tmp_path / "pyenv", ("3.12", "3.13"))),
        PATH=str(empty_bin),
    )

    refused = plugins_cli(config, cli_env, "install", *PLUGINS)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "takopi-cron 0.1.0 requires Python >=3.14, and no installed interpreter" in (
        refused.stderr
    ), refused.stderr
    assert "--python 3.13 --ignore-requires-python" in refused.stderr
    assert config.read_text() == original

    installed = plugins_cli(
        config, cli_env, "install", *PLUGINS, "--python", "3.13", "--ignore-requires-python"
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    raw = tomllib.loads(config.read_text())
    kimi_python = raw["plugins"]["kimi"]["python"]
    cron_python = raw["plugins"]["cron"]["python"]
    assert kimi_python.startswith(str(base / "plugin-envs" / "takopi-engine-kimi")), kimi_python
    assert cron_python.startswith(str(base / "plugin-envs" / "takopi-cron")), cron_python
    listed = plugins_cli(config, cli_env, "list")
    assert "takopi-cron 0.1.0  python 3.13." in listed.stdout, listed.stdout
    assert "takopi-engine-kimi 0.1.0  python 3.13." in listed.stdout, listed.stdout
    assert "engine kimi" in listed.stdout and "command cron" in listed.stdout

    bin_dir = base / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kimi"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CLI} kimi "$@"\n')
    wrapper.chmod(0o755)
    cli_log = base / "fake-cli.jsonl"
    (base / "home").mkdir()
    supervisor.start(
        engines=("kimi",),
        env={
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "FAKE_CLI_LOG": str(cli_log),
            "HOME": str(base / "home"),
            "TAKOPI_CONFIG_PATH": "",
            "PYTHONPATH": "",  # the managed venvs must stand on their own
        },
        wait_ready=False,
    )
    try:
        bot_server.wait_for(
            lambda: any("takopi is ready" in m.text for m in bot_server.bot_messages(CHAT)),
            timeout=60,
        )
    except Exception as exc:
        raise AssertionError(f"telegram never became ready: {exc}\n{supervisor.log()}") from exc

    # /kimi answers with its resume line
    first = bot_server.send_user_message(CHAT, "/kimi hello managed env")
    text = final_reply(bot_server, first["message_id"])
    assert text.startswith("done"), text
    assert "answer to: hello managed env" in text
    assert KIMI_RESUME.search(text), text

    # /model reaches the runner
    model = bot_server.send_user_message(CHAT, "/model set kimi k2-from-chat")
    wait_until(
        lambda: any("k2-from-chat" in t for t in replies_to(bot_server, model["message_id"]))
    )
    second = bot_server.send_user_message(CHAT, "/kimi with the model override")
    assert "answer to: with the model override" in final_reply(bot_server, second["message_id"])
    calls = [json.loads(line) for line in cli_log.read_text().splitlines()]
    argv = calls[-1]["argv"]
    assert argv[argv.index("--model") + 1] == "k2-from-chat", argv
    assert "k2-from-chat" not in calls[0]["argv"]

    # /cron ticks in the background (0.0005 h = 1.8 s) until stopped
    start = bot_server.send_user_message(CHAT, "/cron start 0.0005 /kimi tick")
    wait_until(
        lambda: "cron: started (every 0.0005h)" in replies_to(bot_server, start["message_id"])
    )

    def ticks() -> list[str]:
        return [t for t in replies_to(bot_server, start["message_id"]) if "cron tick #" in t]

    wait_until(lambda: len(ticks()) >= 2, timeout=60)
    answers = [t for t in replies_to(bot_server, start["message_id"]) if "answer to: tick" in t]
    assert answers and all(KIMI_RESUME.search(a) for a in answers), answers
    assert ticks()[0].startswith("cron tick #1 (every 0.0005h)"), ticks()
    assert ticks()[1].startswith("cron tick #2 "), ticks()
    stop = bot_server.send_user_message(CHAT, "/cron stop")
    wait_until(lambda: "cron: stopped" in replies_to(bot_server, stop["message_id"]))

    for name, python in (("engine:kimi", kimi_python), ("command:cron", cron_python)):
        info = supervisor.worker(name)
        assert info["python"].startswith("3.13"), info
        assert psutil.Process(info["pid"]).cmdline()[0] == python, name
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
