"""takopictl against a real supervisor (real worker processes, real control socket)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from takopi.cli.ctl_client import control_socket_path
from tests.cli.conftest import TAKOPI, TAKOPICTL, SupervisorProc, run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.process


def _status(sup: SupervisorProc) -> dict:
    result = sup.ctl("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _worker(doc: dict, name: str) -> dict:
    return next(w for w in doc["workers"] if w["name"] == name)


def _runs(sup: SupervisorProc) -> list[dict]:
    result = sup.ctl("runs", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["runs"]


def _final_reply(sup: SupervisorProc, message_id: int) -> dict | None:
    """The last message sent in reply to ``message_id`` once it is terminal (not progress)."""
    replies = [
        r for r in sup.replies_to(message_id) if not r["text"].startswith(("starting", "working"))
    ]
    return replies[-1] if replies else None


@pytest.mark.timeout(30)
def test_status_without_supervisor_exits_3(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = tmp_path / "takopi.toml"
    result = run_cli([TAKOPICTL, "--config", str(config), "status"], cli_env, timeout=20)
    assert result.returncode == 3
    assert "not running" in result.stderr
    assert result.stdout == ""


@pytest.mark.timeout(30)
def test_stale_socket_counts_as_not_running(
    tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # as in cli_env
    config = tmp_path / "takopi.toml"
    env = dict(cli_env)
    path = control_socket_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))  # bound but never listening: like a supervisor killed with -9
    sock.close()
    try:
        result = run_cli([TAKOPICTL, "--config", str(config), "runs"], env, timeout=20)
    finally:
        path.unlink()
    assert result.returncode == 3
    assert "stale control socket" in result.stderr


def test_status_table_and_json(shared_supervisor: SupervisorProc) -> None:
    sup = shared_supervisor
    message_id = sup.send("sleep=5 answer=slow-one")
    wait_until(lambda: _runs(sup), 30, "the run to be in flight")

    doc = _status(sup)
    assert doc["schema_version"] == 1
    assert doc["supervisor"]["pid"] == sup.proc.pid
    assert doc["supervisor"]["transport"] == "clirec"
    assert doc["supervisor"]["lock"]["held"] is True
    engine = _worker(doc, "engine:clitest")
    transport = _worker(doc, "transport:clirec")
    for worker, kind in ((engine, "engine"), (transport, "transport")):
        assert worker["kind"] == kind
        assert worker["state"] == "ready"
        assert psutil.pid_exists(worker["pid"])
        assert worker["pid"] != sup.proc.pid
        assert isinstance(worker["restarts"], int)
        assert worker["interpreter"]
    assert engine["id"] == "clitest"
    [run] = [r for r in doc["runs"] if r["message_id"] == message_id]
    assert run["engine"] == "clitest"
    assert run["thread"].startswith("clitest:")
    assert run["chat"] == 7

    table = sup.ctl("status")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("WORKER"))
    assert header.split() == [
        "WORKER",
        "KIND",
        "STATE",
        "PID",
        "PYTHON",
        "UPTIME",
        "RESTARTS",
        "RSS",
        "CPU%",
    ]
    engine_row = next(line for line in lines if line.startswith("engine:clitest"))
    assert engine_row.split()[:4] == ["engine:clitest", "engine", "ready", str(engine["pid"])]
    assert f"pid {sup.proc.pid}" in lines[0]
    assert "runs in flight: 1" in table.stdout
    assert run["run_id"] in table.stdout

    wait_until(lambda: _final_reply(sup, message_id), 30, "the final answer")
    assert "slow-one" in _final_reply(sup, message_id)["text"]


def test_logs_of_a_worker(shared_supervisor: SupervisorProc) -> None:
    sup = shared_supervisor
    message_id = sup.send("answer=for-logs")
    wait_until(lambda: _final_reply(sup, message_id), 30, "the answer")
    result = sup.ctl("logs", "clitest", "-n", "200")
    assert result.returncode == 0, result.stderr
    assert "takopi_clitest.agent" in result.stdout  # the engine worker logged the spawn argv
    short = sup.ctl("logs", "engine:clitest", "-n", "1")
    assert short.returncode == 0
    assert len(short.stdout.splitlines()) == 1

    unknown = sup.ctl("logs", "nope")
    assert unknown.returncode == 1
    assert "unknown worker" in unknown.stderr


def test_cancel_a_run(shared_supervisor: SupervisorProc) -> None:
    sup = shared_supervisor
    assert sup.ctl("cancel", "no-such-run").returncode == 1
    message_id = sup.send("sleep=60 answer=never")
    runs = wait_until(lambda: [r for r in _runs(sup) if r["message_id"] == message_id], 30, "run")
    result = sup.ctl("cancel", runs[0]["run_id"])
    assert result.returncode == 0, result.stderr
    reply = wait_until(lambda: _final_reply(sup, message_id), 30, "the terminal reply")
    assert "cancelled" in reply["text"]
    assert "never" not in reply["text"]
    wait_until(lambda: not [r for r in _runs(sup) if r["message_id"] == message_id], 30, "run gone")


def test_restart_waits_for_runs_in_flight(shared_supervisor: SupervisorProc) -> None:
    sup = shared_supervisor
    before = _worker(_status(sup), "engine:clitest")
    message_id = sup.send("sleep=5 answer=finished-before-restart")
    wait_until(lambda: [r for r in _runs(sup) if r["message_id"] == message_id], 30, "run")

    result = sup.ctl("restart", "clitest")
    assert result.returncode == 0, result.stderr
    assert "waiting for 1 run(s) in flight on clitest" in result.stdout
    assert "restarted: engine:clitest" in result.stdout
    # The run was not interrupted: its real answer had arrived when takopictl returned.
    reply = _final_reply(sup, message_id)
    assert reply is not None and "finished-before-restart" in reply["text"]

    after = wait_until(
        lambda: (
            (w := _worker(_status(sup), "engine:clitest"))["state"] == "ready"
            and w["pid"] != before["pid"]
            and w
        ),
        30,
        "the restarted engine worker",
    )
    assert after["restarts"] == before["restarts"] + 1
    assert (
        not psutil.pid_exists(before["pid"])
        or psutil.Process(before["pid"]).status() == psutil.STATUS_ZOMBIE
    )


def test_restart_force_cancels_runs_with_terminal_reply(shared_supervisor: SupervisorProc) -> None:
    sup = shared_supervisor
    wait_until(lambda: _worker(_status(sup), "engine:clitest")["state"] == "ready", 30, "ready")
    before = _worker(_status(sup), "engine:clitest")
    message_id = sup.send("sleep=60 answer=never")
    wait_until(lambda: [r for r in _runs(sup) if r["message_id"] == message_id], 30, "run")

    result = sup.ctl("restart", "--force", "engine:clitest")
    assert result.returncode == 0, result.stderr
    assert "cancelled 1 run(s) in flight" in result.stdout
    assert "restarted: engine:clitest" in result.stdout
    reply = wait_until(lambda: _final_reply(sup, message_id), 30, "the terminal reply")
    assert "cancelled" in reply["text"] and "never" not in reply["text"]
    wait_until(
        lambda: (
            (w := _worker(_status(sup), "engine:clitest"))["state"] == "ready"
            and w["pid"] != before["pid"]
        ),
        30,
        "the restarted engine worker",
    )
    # The engine still works after the restart.
    again = sup.send("answer=after-force")
    wait_until(lambda: _final_reply(sup, again), 30, "an answer after the restart")
    assert "after-force" in _final_reply(sup, again)["text"]


def test_restart_unknown_worker_fails(shared_supervisor: SupervisorProc) -> None:
    result = shared_supervisor.ctl("restart", "nope")
    assert result.returncode == 1
    assert "unknown worker 'nope'" in result.stderr


def test_reload_after_editing_config(
    supervisor_factory: Callable[[], SupervisorProc],
) -> None:
    sup = supervisor_factory()
    sup.start()
    first = sup.send("answer=warm-up")  # engine workers start on first use
    wait_until(lambda: _final_reply(sup, first), 30, "the first answer")
    before = _worker(_status(sup), "engine:clitest")

    sup.write_config("[clitest]\nflavour = 'new'\n")
    result = sup.ctl("reload")
    assert result.returncode == 0, result.stderr
    assert "config reloaded" in result.stdout
    assert "restarted (config changed): engine:clitest" in result.stdout
    wait_until(
        lambda: (
            (w := _worker(_status(sup), "engine:clitest"))["pid"] != before["pid"]
            and w["state"] == "ready"
        ),
        30,
        "the engine worker restarted with the new table",
    )

    sup.config.write_text(sup.config.read_text().replace(str(sup.dir), str(sup.dir) + "-moved"))
    moved = sup.ctl("reload")
    assert moved.returncode == 0, moved.stderr
    assert "needs a restart to apply: transport:clirec" in moved.stdout

    sup.config.write_text("this is = = not toml\n")
    broken = sup.ctl("reload")
    assert broken.returncode == 1
    assert "reload failed" in broken.stderr
    doc = _status(sup)
    assert doc["supervisor"]["state"] == "running"
    assert _worker(doc, "transport:clirec")["state"] == "ready"


def test_stop_exits_0_and_releases_the_lock(
    supervisor_factory: Callable[[], SupervisorProc],
) -> None:
    sup = supervisor_factory()
    sup.start()
    lock = sup.config.with_suffix(".lock")
    assert json.loads(lock.read_text())["pid"] == sup.proc.pid
    worker_pids = [w["pid"] for w in _status(sup)["workers"] if w["pid"]]

    result = sup.ctl("stop")
    assert result.returncode == 0, result.stderr
    assert f"stopped (pid {sup.proc.pid})" in result.stdout
    assert sup.proc.wait(timeout=30) == 0
    assert not lock.exists()
    for pid in worker_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = sup.ctl("status")
    assert after.returncode == 3


def test_takopi_cli_starts_the_supervisor(
    tmp_path: Path, cli_env: dict[str, str], supervisor_factory: Callable[[], SupervisorProc]
) -> None:
    """`takopi --config X` (not a TTY, config present) runs the supervisor; a second `takopi`
    on the same config is refused; `takopictl stop` ends the first one with exit 0."""
    sup = supervisor_factory()
    sup.write_config('[plugins]\nenabled = ["takopi-clitest"]\n')
    sup.start(args=[TAKOPI, "--config", str(sup.config)])
    # Every installed engine was load-checked before the transport started: the broken test
    # plugin is not an engine (no worker, says why), the rest works; engine workers start on
    # first use.
    doc = _status(sup)
    assert doc["supervisor"]["pid"] == sup.proc.pid
    assert doc["supervisor"]["default_engine"] == "clitest"
    engines = {e["id"]: e for e in doc["engines"]}
    assert engines["clibroken"]["status"] == "load_error"
    assert "broken on purpose" in engines["clibroken"]["issue"]
    assert (engines["clibroken"]["offered"], engines["clibroken"]["worker"]) == (False, None)
    assert engines["clitest"] == {
        "id": "clitest",
        "status": "ok",
        "issue": None,
        "offered": True,
        "worker": "not-started",
    }
    assert "engine:clibroken" not in {w["name"] for w in doc["workers"]}
    table = sup.ctl("status").stdout
    broken_row = next(line for line in table.splitlines() if line.startswith("clibroken"))
    assert broken_row.split()[:2] == ["clibroken", "load_error"], table
    assert "broken on purpose" in broken_row
    not_started = next(line for line in table.splitlines() if line.startswith("engine:clitest"))
    assert not_started.split()[:3] == ["engine:clitest", "engine", "not-started"], table
    unknown = sup.ctl("restart", "clibroken")  # not an engine: nothing to restart
    assert unknown.returncode == 1 and "unknown worker 'clibroken'" in unknown.stderr
    message_id = sup.send("answer=via-takopi")
    wait_until(lambda: _final_reply(sup, message_id), 30, "answer")

    second = run_cli([TAKOPI, "--config", str(sup.config)], sup.env, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr

    assert sup.ctl("stop").returncode == 0
    assert sup.proc.wait(timeout=30) == 0


def test_watch_config_hot_reloads_without_takopictl(
    supervisor_factory: Callable[[], SupervisorProc],
) -> None:
    """`watch_config = true`: editing the file is enough (no `takopictl reload`, no SIGHUP)."""
    sup = supervisor_factory()

    def config(flavour: str, transport_dir: str) -> str:
        return (
            "watch_config = true\n"
            'transport = "clirec"\n'
            'default_engine = "clitest"\n'
            f"[transports.clirec]\ndir = {json.dumps(transport_dir)}\n"
            f"[clitest]\nflavour = {json.dumps(flavour)}\n"
        )

    sup.config.write_text(config("old", str(sup.dir)))
    sup.start()
    first = sup.send("answer=warm-up")  # engine workers start on first use
    wait_until(lambda: _final_reply(sup, first), 30, "the first answer")
    before = _worker(_status(sup), "engine:clitest")

    sup.config.write_text(config("new", str(sup.dir)))
    wait_until(
        lambda: (
            (w := _worker(_status(sup), "engine:clitest"))["pid"] != before["pid"]
            and w["state"] == "ready"
        ),
        30,
        "the engine worker restarted after the config file changed",
    )

    sup.config.write_text(config("new", str(sup.dir) + "-moved"))
    wait_until(
        lambda: (
            "restart_required" in sup.log.read_text() and "transport:clirec" in sup.log.read_text()
        ),
        30,
        "a transport change reported as needing a restart",
    )

    sup.config.write_text("this is = = not toml\n")
    wait_until(lambda: "config.reload.rejected" in sup.log.read_text(), 30, "the rejection")
    doc = _status(sup)
    assert doc["supervisor"]["state"] == "running"
    assert _worker(doc, "transport:clirec")["state"] == "ready"
