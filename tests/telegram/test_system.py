"""The whole system: supervisor + telegram transport worker + codex engine worker (with the fake
``codex`` CLI), against the fake Bot API. Kill -9 of either worker mid-run still ends in a
terminal reply."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from takopi.supervisor.control import request
from takopi.supervisor.paths import resolve_paths
from tests.support.processes import terminate
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

REPO = Path(__file__).resolve().parents[2]
RESUME_RE = re.compile(r"codex resume (thread-[0-9a-f]+)")


class System:
    def __init__(self, base: Path, server: Any) -> None:
        self.base = base
        self.server = server
        self.config_path = base / "takopi.toml"
        self.log_path = base / "supervisor.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self,
        *,
        telegram: Sequence[str] = (),
        tables: Sequence[str] = (),
        forward_coalesce_s: float = 0,
    ) -> System:
        """Start the supervisor; ``telegram`` lines go into ``[transports.telegram]``,
        ``tables`` (whole tables) at the end of the config. Waits for a new "takopi is
        ready" message (a restart in the same directory sends another one)."""
        ready_before = self._ready_count(check_alive=False)
        self.config_path.write_text(
            "\n".join(
                [
                    'transport = "telegram"',
                    'default_engine = "codex"',
                    "[transports.telegram]",
                    f'bot_token = "{self.server.token}"',
                    f"chat_id = {CHAT}",
                    f'api_url = "{self.server.base_url}"',
                    f"forward_coalesce_s = {forward_coalesce_s}",
                    *telegram,
                    "[supervisor]",
                    "ping_interval = 0.5",
                    *tables,
                ]
            )
            + "\n"
        )
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = str(REPO)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "takopi.supervisor",
                "--config",
                str(self.config_path),
                "--engine",
                "codex",
            ],
            env=env,
            cwd=self.base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self._ready_count() > ready_before, 60)
        return self

    def _ready_count(self, *, check_alive: bool = True) -> int:
        if check_alive and self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"supervisor exited: {self.log()}")
        return sum(1 for m in self.server.bot_messages(CHAT) if "takopi is ready" in m.text)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""

    def status(self) -> dict[str, Any]:
        socket_path = resolve_paths(self.config_path, create=False).control_socket
        response = request(socket_path, "status", {})
        assert response["ok"], response
        return response["result"]  # type: ignore[no-any-return]

    def worker(self, kind: str) -> dict[str, Any]:
        return next(w for w in self.status()["workers"] if w["kind"] == kind)

    def kill_transport(self) -> dict[str, Any]:
        """kill -9 the transport worker and wait until it has exited; its status row."""
        old = self.worker("transport")
        os.kill(old["pid"], signal.SIGKILL)
        wait_until(
            lambda: (
                not psutil.pid_exists(old["pid"])
                or psutil.Process(old["pid"]).status() == psutil.STATUS_ZOMBIE
            ),
            10,
        )
        return old

    def wait_bot(self, predicate: Any, timeout: float = 30.0) -> Any:
        def find() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"supervisor exited: {self.log()}")
            return next((m for m in self.server.bot_messages(CHAT) if predicate(m)), None)

        return wait_until(find, timeout)

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()


@contextmanager
def system_in_tmp(server: Any, prefix: str) -> Iterator[System]:
    """A :class:`System` (not started) in a fresh directory ``/tmp/<prefix>-<random>`` — short,
    as ipc paths are length-limited —, stopped and removed afterwards."""
    base = Path("/tmp") / f"{prefix}-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    sys_ = System(base, server)
    try:
        yield sys_
    finally:
        sys_.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def system(server, fake_codex) -> Iterator[System]:
    with system_in_tmp(server, "tkg") as sys_:
        yield sys_


def _final_for(system: System, user_id: int, timeout: float = 40.0) -> Any:
    return system.wait_bot(
        lambda m: (
            m.reply_to_message_id == user_id and m.text.startswith(("done", "error", "interrupted"))
        ),
        timeout,
    )


def test_prompt_and_reply_through_the_supervisor(system, server, fake_codex):
    system.start()
    user = server.send_user_message(CHAT, "hello supervisor")
    final = _final_for(system, user["message_id"])
    assert "ok: hello supervisor" in final.text
    thread = RESUME_RE.search(final.text).group(1)
    again = server.send_user_message(CHAT, "again", reply_to=final.message_id)
    final2 = _final_for(system, again["message_id"])
    assert f"(resumed {thread})" in final2.text


def test_no_process_of_the_service_loads_pydantic(system, server, fake_codex):
    """The supervisor validates the config in a short-lived child; the transport reads its
    table as validated there; engines never needed pydantic (about 5 MiB per process)."""
    system.start()
    user = server.send_user_message(CHAT, "hello pydantic")
    assert "ok: hello pydantic" in _final_for(system, user["message_id"]).text
    assert system.proc is not None
    pids = {"supervisor": system.proc.pid}
    pids.update({w["name"]: w["pid"] for w in system.status()["workers"] if w["pid"]})
    assert {"supervisor", "transport:telegram", "engine:codex"} <= set(pids)
    mapped = {
        name: "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()
        for name, pid in pids.items()
    }
    assert not any(mapped.values()), mapped


def test_transport_worker_killed_mid_run_still_delivers(system, server, fake_codex):
    system.start()
    user = server.send_user_message(CHAT, "wait gate_t")
    wait_until(lambda: fake_codex.calls(), 30)
    progress = system.wait_bot(lambda m: m.reply_to_message_id == user["message_id"])
    old = system.kill_transport()
    fake_codex.open_gate("gate_t")
    final = _final_for(system, user["message_id"], timeout=60)
    assert "ok: wait gate_t" in final.text
    assert RESUME_RE.search(final.text)
    # the stale progress message of the dead worker was replaced
    wait_until(lambda: server.message(CHAT, progress.message_id).deleted, 20)
    new = system.worker("transport")
    assert new["pid"] != old["pid"] and new["state"] == "ready"
    assert len(fake_codex.calls()) == 1


def test_engine_worker_killed_mid_run_gives_an_error_with_resume_line(system, server, fake_codex):
    system.start()
    user = server.send_user_message(CHAT, "sleep 60")
    wait_until(lambda: fake_codex.calls(), 30)
    call = fake_codex.calls()[0]
    engine = system.worker("engine")
    os.kill(engine["pid"], signal.SIGKILL)
    final = _final_for(system, user["message_id"], timeout=60)
    assert final.text.startswith("error")
    assert RESUME_RE.search(final.text)
    wait_until(
        lambda: (
            not psutil.pid_exists(call["pid"])
            or psutil.Process(call["pid"]).status() == psutil.STATUS_ZOMBIE
        ),
        15,
    )


def test_run_finishing_after_the_transport_restarted_is_still_delivered(system, server, fake_codex):
    """The transport dies mid-run, its successor is up and idle, *then* the run finishes: the
    journaled outcome must reach the chat without waiting for yet another restart."""
    system.start()
    user = server.send_user_message(CHAT, "wait gate_late")
    wait_until(lambda: fake_codex.calls(), 30)
    system.wait_bot(lambda m: m.reply_to_message_id == user["message_id"])
    old = system.worker("transport")
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(
        lambda: (w := system.worker("transport"))["pid"] != old["pid"] and w["state"] == "ready",
        30,
    )
    # The new transport has finished its startup deliveries (its startup message is out).
    wait_until(lambda: len(server.calls("sendMessage")) >= 3, 30)
    fake_codex.open_gate("gate_late")
    final = _final_for(system, user["message_id"], timeout=60)
    assert "ok: wait gate_late" in final.text
    assert RESUME_RE.search(final.text)
    finals = [
        m
        for m in server.bot_messages(CHAT)
        if m.reply_to_message_id == user["message_id"] and m.text.startswith("done")
    ]
    assert len(finals) == 1  # delivered once, not on every poll


def test_reload_refreshes_the_command_menu(system, server, fake_codex):
    """A reload pushes a new runtime snapshot to the transport worker, which re-sends the
    menu (the reference re-sends setMyCommands after each hot reload)."""
    system.start()
    server.wait_for(lambda: server.commands, timeout=30)
    assert "webapp" not in [c["command"] for c in server.commands or []]
    project = system.base / "webapp"
    project.mkdir()
    with system.config_path.open("a") as f:
        f.write(f'[projects.webapp]\npath = "{project}"\n')
    socket_path = resolve_paths(system.config_path, create=False).control_socket
    response = request(socket_path, "reload", {})
    assert response["ok"] and response["result"]["reloaded"], response
    menu = server.wait_for(
        lambda: [c for c in (server.commands or []) if c["command"] == "webapp"], timeout=30
    )
    assert menu == [{"command": "webapp", "description": "work on: webapp"}]
