"""An engine plugin that fails to import is not an engine (issue #11 item 2; reference
behaviour, parity-gaps Part 3): the supervisor load-checks every engine before the transport
builds its startup message, so the broken engine is absent from the startup message, the
command menu, ``/agent set`` and routing, and a command plugin with the same id dispatches.

The broken ``twin`` engine sleeps before failing: were the startup message built before the
check finished (the transport used to wait only for the default engine), ``twin`` would show up
as an engine. Real supervisor, real Telegram transport worker against the fake Bot API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from takopi.supervisor.control import request
from takopi.supervisor.paths import resolve_paths
from tests.fakes.bot_api import BotApiServer
from tests.support.processes import terminate
from tests.support.supervisor import PLUGIN_DIST, REPO
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

CHAT = 1001

TWIN_ENGINE = """
import time

time.sleep(1.5)  # slower than the transport's start-up
raise ImportError("twin: missing dependency")
"""

TWIN_COMMAND = """
from takopi.api import CommandContext, CommandResult


class Twin:
    id = "twin"
    description = "the twin command"

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        return CommandResult(text=f"twin command ran: {ctx.args_text}")


TWIN = Twin()
"""


def _twin_site(base: Path) -> Path:
    """A distribution with an engine ``twin`` that cannot be imported and a command ``twin``."""
    site = base / "twin-site"
    dist_info = site / "takopi_twin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (site / "takopi_twin_engine.py").write_text(TWIN_ENGINE)
    (site / "takopi_twin_command.py").write_text(TWIN_COMMAND)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: takopi-twin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[takopi.engine_backends]\ntwin = takopi_twin_engine:BACKEND\n"
        "[takopi.command_backends]\ntwin = takopi_twin_command:TWIN\n"
    )
    return site


class Service:
    """The supervisor with the telegram transport, the ``scripted`` engine and ``twin``."""

    def __init__(self, base: Path, server: BotApiServer) -> None:
        self.base = base
        self.server = server
        self.config = base / "takopi.toml"
        self.config.write_text(
            "\n".join(
                [
                    'transport = "telegram"',
                    'default_engine = "scripted"',
                    "[transports.telegram]",
                    f'bot_token = "{server.token}"',
                    f"chat_id = {CHAT}",
                    f'api_url = "{server.base_url}"',
                    "forward_coalesce_s = 0",
                ]
            )
            + "\n"
        )
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = os.pathsep.join([str(_twin_site(base)), str(PLUGIN_DIST), str(REPO)])
        self._log = (base / "supervisor.log").open("ab")
        argv = [sys.executable, "-m", "takopi.supervisor", "--config", str(self.config)]
        argv += ["--engine", "scripted", "--engine", "twin"]
        self.proc = subprocess.Popen(
            argv, env=env, cwd=base, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return (self.base / "supervisor.log").read_text()[-5000:]

    def bot_message(self, predicate: Any, timeout: float = 30.0) -> Any:
        def find() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError(f"supervisor exited: {self.log()}")
            return next((m for m in self.server.bot_messages(CHAT) if predicate(m)), None)

        return wait_until(find, timeout)

    def status(self) -> dict[str, Any]:
        socket_path = resolve_paths(self.config, create=False).control_socket
        response = request(socket_path, "status", {})
        assert response["ok"], response
        return response["result"]  # type: ignore[no-any-return]

    def stop(self) -> int | None:
        terminate(self.proc)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def server() -> Iterator[BotApiServer]:
    srv = BotApiServer(max_poll_timeout=0.5)
    srv.start()
    srv.add_chat(CHAT)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def service(server: BotApiServer) -> Iterator[Service]:
    base = Path("/tmp") / f"tkv-{uuid.uuid4().hex[:8]}"  # ipc paths are length-limited
    base.mkdir()
    svc = Service(base, server)
    try:
        yield svc
    finally:
        svc.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_an_engine_that_fails_to_import_is_not_an_engine(
    service: Service, server: BotApiServer
) -> None:
    ready = service.bot_message(lambda m: "takopi is ready" in m.text, timeout=60)
    # Absent from the startup message (not even as "failed to load").
    assert "engines: scripted" in ready.text.splitlines(), ready.text
    assert "twin" not in ready.text

    # The menu lists `twin` once, as the command.
    menu = server.wait_for(lambda: server.commands, timeout=30)
    twins = [c for c in menu if c["command"] == "twin"]
    assert twins == [{"command": "twin", "description": "the twin command"}], menu
    assert {"command": "scripted", "description": "use engine: scripted"} in menu

    # `/twin` dispatches to the command plugin.
    asked = server.send_user_message(CHAT, "/twin hello there")
    reply = service.bot_message(lambda m: m.reply_to_message_id == asked["message_id"])
    assert reply.text == "twin command ran: hello there", reply.text

    # `/agent set twin` does not accept it.
    agent = server.send_user_message(CHAT, "/agent set twin")
    refused = service.bot_message(lambda m: m.reply_to_message_id == agent["message_id"])
    assert refused.text.startswith("unknown engine twin."), refused.text

    # The real engine still runs.
    run = server.send_user_message(CHAT, "hello answer=still-fine")
    final = service.bot_message(
        lambda m: m.reply_to_message_id == run["message_id"] and m.text.startswith("done"),
        timeout=60,
    )
    assert "still-fine" in final.text

    # Operators see why; there is no worker for it.
    status = service.status()
    engines = {e["id"]: e for e in status["engines"]}
    assert engines["twin"]["status"] == "load_error"
    assert "twin: missing dependency" in engines["twin"]["issue"]
    assert not engines["twin"]["offered"]
    assert "engine:twin" not in {w["name"] for w in status["workers"]}
    assert "setup.warning" in service.log() and "engine=twin" in service.log()
    assert service.stop() == 0
