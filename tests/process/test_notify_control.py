"""sd_notify sequence against a NOTIFY_SOCKET the test owns; the control socket verbs;
a command worker reached from the transport; handshake authentication rules."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
from pathlib import Path

import anyio
import pytest

from takopi.supervisor.arbiter import Arbiter, SupervisorOptions
from takopi.supervisor.control import ControlServer, request
from takopi.supervisor.paths import resolve_paths
from takopi.supervisor.verbs import bind_verbs
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]


def test_sd_notify_sequence(supervisor: SupervisorHarness) -> None:
    path = supervisor.base / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.settimeout(0.2)
    messages: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                messages.append(sink.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return messages

    supervisor.write_config()
    supervisor.start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}, wait_ready=False)
    wait_until(lambda: any("READY=1" in m for m in drain()), timeout=30)
    status = supervisor.control("status")
    # READY once the transport is ready, which is after the engines were decided (the engine
    # worker itself starts on first use).
    states = {w["name"]: w["state"] for w in status["workers"]}
    assert states == {"transport:recorder": "ready", "engine:scripted": "not-started"}
    assert [(e["id"], e["offered"]) for e in status["engines"]] == [("scripted", True)]
    ready_msg = next(m for m in messages if "READY=1" in m)
    assert "STATUS=running: recorder; engines: scripted" in ready_msg
    wait_until(lambda: sum("WATCHDOG=1" in m for m in drain()) >= 2)
    assert supervisor.proc is not None
    supervisor.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: any("RELOADING=1" in m for m in drain()))
    reload_index = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
    assert "MONOTONIC_USEC=" in messages[reload_index]
    wait_until(lambda: any("READY=1" in m for m in drain()[reload_index + 1 :]))
    assert supervisor.stop() == 0
    drain()
    assert any("STOPPING=1" in m for m in messages)
    # workers never see the notify socket
    assert "NOTIFY_SOCKET" not in supervisor.log()
    sink.close()
    assert_no_leftovers(supervisor)


def test_control_verbs(supervisor: SupervisorHarness) -> None:
    supervisor.write_config()
    supervisor.start()
    sock_path = supervisor.control_socket
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700

    status = supervisor.control("status")
    assert status["transport"] == "recorder" and status["state"] == "running"
    names = {w["name"] for w in status["workers"]}
    assert names == {"engine:scripted", "transport:recorder"}

    supervisor.send("for the logs answer=x")
    wait_until(lambda: supervisor.finals())
    logs = supervisor.control("logs", {"name": "engine:scripted", "lines": 500})
    assert any("subprocess.spawn" in line for line in logs["lines"])
    assert len(supervisor.control("logs", {"name": "scripted", "lines": 1})["lines"]) == 1

    old = supervisor.worker("engine:scripted")["pid"]
    assert supervisor.control("restart", {"names": ["engine:scripted"]})["restarted"] == [
        "engine:scripted"
    ]
    wait_until(
        lambda: (
            supervisor.worker("engine:scripted")["pid"] not in (None, old)
            and supervisor.worker("engine:scripted")["state"] == "ready"
        )
    )

    bad = request(sock_path, "restart", {"names": ["nope"]})
    assert not bad["ok"] and bad["code"] == "bad_request" and "nope" in bad["error"]
    unknown = request(sock_path, "frobnicate")
    assert not unknown["ok"] and unknown["code"] == "unknown_verb"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(str(sock_path))
        raw.sendall(b"this is not json\n")
        answer = json.loads(raw.recv(65536))
    assert answer == {"ok": False, "error": "request is not valid JSON", "code": "bad_request"}

    supervisor.send("slow one sleep=30")
    wait_until(lambda: "resume" in str(supervisor.outbox()[-1].get("text")))
    runs = wait_until(lambda: supervisor.control("runs")["runs"])
    cancelled = supervisor.control("cancel", {"run_id": runs[0]["run_id"]})
    assert cancelled == {"cancelled": True}
    final = wait_until(lambda: supervisor.finals()[1:])[0]
    assert final["text"].startswith("error") and "cancelled by the operator" in final["text"]
    assert "`scripted resume " in final["text"]

    assert supervisor.control("stop") == {"stopping": True}
    assert supervisor.proc is not None
    assert supervisor.proc.wait(30) == 0
    assert not sock_path.exists()
    assert_no_leftovers(supervisor)


def test_command_worker_executor_survives_handle(supervisor: SupervisorHarness) -> None:
    supervisor.write_config()
    supervisor.start()
    supervisor.send("", op="command_ids")
    assert "echo" in wait_until(lambda: supervisor.outbox_ops("command_ids"))[0]["ids"]
    supervisor.send("/echo hi there", op="command")
    result = wait_until(lambda: supervisor.outbox_ops("command_result"))[0]
    assert result["text"] == "echo: hi there"
    texts = lambda: [r.get("text") for r in supervisor.outbox_ops("send")]  # noqa: E731
    assert "echo via executor: hi there" in texts()
    # a background task of the command plugin uses ctx.executor after handle() returned
    wait_until(lambda: "later: hi there" in texts())
    status = supervisor.control("status")
    command = next(w for w in status["workers"] if w["name"] == "command:echo")
    assert command["state"] == "ready"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


@pytest.mark.anyio
async def test_handshake_rules(tmp_path: Path) -> None:
    arbiter = Arbiter(SupervisorOptions(config_path=tmp_path / "takopi.toml"))
    arbiter._assemble(resolve_paths(tmp_path / "takopi.toml", create=False))
    watcher = arbiter._new_watcher("engine", "codex")
    inc = watcher._new_incarnation()
    assert watcher.state.value == "starting"
    identity, secret = inc.identity, inc.secret
    handshake = arbiter.handshake
    hello = {"kind": "engine", "id": "codex", "api_version": 1, "secret": "wrong"}
    assert await handshake.authenticate(identity, hello) == "wrong secret"
    hello["secret"] = secret
    hello["id"] = "claude"
    assert "belongs to engine:codex" in str(await handshake.authenticate(identity, hello))
    hello["id"] = "codex"
    hello["api_version"] = 2
    assert "API version mismatch" in str(await handshake.authenticate(identity, hello))
    hello["api_version"] = 1
    assert await handshake.authenticate(b"engine:codex:other", hello) == "unknown identity"
    arbiter.config_loaded.set()
    accepted = await handshake.authenticate(identity, hello)
    # accepted: the WELCOME carries the worker's environment (no systemd socket in it)
    assert isinstance(accepted, dict) and "PATH" in accepted["env"], accepted
    assert accepted["env"]["TAKOPI_CONFIG_PATH"].endswith("takopi.toml")
    # one-time: the same secret cannot be replayed
    assert await handshake.authenticate(identity, hello) == "unknown identity"
    assert inc.secret is None
    assert watcher.hello is not None and watcher.hello.secret is None
    assert watcher.hello.kind == "engine" and watcher.hello.id == "codex"
    # an incarnation whose process is gone is refused even before it said HELLO
    again = watcher._new_incarnation()
    handshake.forget(again.identity)
    hello["secret"] = again.secret
    assert await handshake.authenticate(again.identity, hello) == "unknown identity"


@pytest.mark.anyio
async def test_control_refuses_other_uid_and_oversized(tmp_path: Path) -> None:
    class Fake:
        def status(self) -> dict:
            return {"pid": os.getpid()}

    handlers = bind_verbs(Fake())  # type: ignore[arg-type]
    server = ControlServer(tmp_path / "c.sock", handlers)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        ok = await anyio.to_thread.run_sync(request, tmp_path / "c.sock", "status")
        assert ok == {"ok": True, "id": None, "result": {"pid": os.getpid()}}

        def oversized() -> dict:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
                raw.connect(str(tmp_path / "c.sock"))
                raw.sendall(b"{" + b" " * 70_000)
                return json.loads(raw.recv(65536))

        answer = await anyio.to_thread.run_sync(oversized)
        assert answer["code"] == "bad_request" and "too large" in answer["error"]
        tg.cancel_scope.cancel()


def test_reload_restarts_changed_engine_and_keeps_old_config_on_error(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config()
    supervisor.start()
    old = supervisor.warm_engine()["pid"]
    text = supervisor.config_path.read_text()
    supervisor.config_path.write_text(text + "\n[scripted]\nflavour = 'new'\n")
    result = supervisor.control("reload")
    assert result["reloaded"] is True
    assert result["restarted"] == ["engine:scripted"]
    wait_until(
        lambda: (
            supervisor.worker("engine:scripted")["pid"] not in (None, old)
            and supervisor.worker("engine:scripted")["state"] == "ready"
        )
    )
    supervisor.config_path.write_text("this is = = not toml")
    bad = supervisor.control("reload")
    assert bad["reloaded"] is False and bad["error"]
    assert supervisor.control("status")["state"] == "running"
    supervisor.send("after reload answer=still-fine")
    final = wait_until(lambda: [f for f in supervisor.finals() if "still-fine" in f["text"]])[0]
    assert final["text"].startswith("done")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_a_reload_whose_engine_table_cannot_be_probed_is_rejected_not_fatal(
    supervisor: SupervisorHarness,
) -> None:
    """A TOML local time in an engine table cannot cross the wire to the engine probe: the
    TypeError once escaped reload() — a crashed supervisor on SIGHUP or watch_config."""
    supervisor.write_config()
    supervisor.start()
    good = supervisor.config_path.read_text()
    supervisor.config_path.write_text(good + "\n[scripted]\nat = 22:00:00\n")
    bad = supervisor.control("reload")
    assert bad["reloaded"] is False and "cannot load-check" in bad["error"]
    assert supervisor.control("status")["state"] == "running"
    os.kill(supervisor.proc.pid, signal.SIGHUP)  # the same through the signal path
    wait_until(lambda: "supervisor.reloaded" in supervisor.log())
    assert supervisor.proc.poll() is None
    supervisor.config_path.write_text(good)
    assert supervisor.control("reload")["reloaded"] is True
    supervisor.send("after reload answer=still-fine")
    final = wait_until(lambda: [f for f in supervisor.finals() if "still-fine" in f["text"]])[0]
    assert final["text"].startswith("done")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
