"""The fork server is started before the supervisor reads anything: forked from it once its
imports are done (shared pages), or spawned before them when the environment holds transport
secrets. It must never outlive a supervisor that does not adopt it, and ``--no-zygote`` must
mean no zygote."""

from __future__ import annotations

import psutil
import pytest

from tests.support.processes import marked_processes
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def _zygotes(
    harness: SupervisorHarness, workers: frozenset[int] | set[int] = frozenset()
) -> list[int]:
    """Fork servers (named ``tk-zygote``; forked workers rename themselves) that are not
    ``workers``."""
    found = []
    for proc in marked_processes(harness.mark):
        try:
            if proc.name() == "tk-zygote" and proc.pid not in workers:
                found.append(proc.pid)
        except Exception:
            continue
    return found


def test_an_early_zygote_leaves_with_a_supervisor_that_fails_at_config(
    supervisor: SupervisorHarness,
) -> None:
    # Not even TOML: the supervisor fails before it starts a single worker or adopts anything.
    supervisor.config_path.write_text('transport = "recorder"\ndefault_engine = \n')
    supervisor.start(wait_ready=False)
    assert supervisor.proc is not None
    assert supervisor.proc.wait(60) != 0
    log = supervisor.log()
    assert "takopi.toml" in log
    assert "zygote.started" not in log and "worker.spawned" not in log
    assert_no_leftovers(supervisor)


def test_an_early_zygote_is_adopted_and_serves_the_workers(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config()
    supervisor.start(secret_free_env=True)
    supervisor.send("hello answer=adopted")  # engine workers start on first use
    final = wait_until(lambda: supervisor.finals())[0]
    assert "adopted" in final["text"]
    status = supervisor.control("status")
    assert {w["name"] for w in status["workers"]} == {"engine:scripted", "transport:recorder"}
    zygote_pids = [h["pid"] for h in status["helpers"] if h["name"] == "zygote"]
    workers = {w["pid"] for w in status["workers"]}
    # Exactly one fork server runs, it is the one the supervisor reports, and it is the one
    # spawned before the supervisor's imports (not a second one spawned later).
    assert len(zygote_pids) == 1
    assert _zygotes(supervisor, workers) == zygote_pids
    started = [line for line in supervisor.log().splitlines() if "zygote.started" in line]
    assert len(started) == 1 and "early=True" in started[0], started
    # Forked from the supervisor, sharing its imported pages: same command line, our child.
    assert "forked=True" in started[0], started
    zygote = psutil.Process(zygote_pids[0])
    assert zygote.ppid() == supervisor.proc.pid
    assert zygote.cmdline() == psutil.Process(supervisor.proc.pid).cmdline()
    # Forked workers keep the zygote's command line; their process names tell them apart.
    for worker in status["workers"]:
        expected = f"tk-{worker['kind']}-{worker['name'].split(':', 1)[1]}"[:15]
        assert psutil.Process(worker["pid"]).name() == expected, worker
    assert psutil.Process(zygote_pids[0]).name() == "tk-zygote"
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_a_transport_secret_in_the_environment_means_a_spawned_zygote(
    supervisor: SupervisorHarness,
) -> None:
    # A forked zygote would keep the supervisor's environment block (and so the token) in
    # memory: with a transport secret there, it is spawned with a clean environment instead.
    secret = "4242:env-override-secret"
    env = supervisor.env()
    env["TAKOPI__TRANSPORTS__RECORDER__TOKEN"] = secret
    supervisor.write_config()
    supervisor.start(env=env)
    supervisor.send("hello answer=spawned")
    wait_until(lambda: [f for f in supervisor.finals() if "spawned" in f["text"]])
    status = supervisor.control("status")
    zygote_pids = [h["pid"] for h in status["helpers"] if h["name"] == "zygote"]
    assert len(zygote_pids) == 1
    started = [line for line in supervisor.log().splitlines() if "zygote.started" in line]
    assert len(started) == 1 and "forked=False" in started[0], started
    zygote = psutil.Process(zygote_pids[0])
    assert "--zygote" in zygote.cmdline()
    engine = supervisor.worker("engine:scripted")["pid"]
    for pid in (zygote.pid, engine):
        with open(f"/proc/{pid}/environ", "rb") as environ:
            assert secret.encode() not in environ.read(), pid
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_no_zygote_flag_starts_none(supervisor: SupervisorHarness) -> None:
    supervisor.write_config()
    supervisor.start(args=("--no-zygote",))
    assert _zygotes(supervisor) == []
    assert [h for h in supervisor.control("status")["helpers"] if h["name"] == "zygote"] == []
    log = supervisor.log()
    # None was spawned early and then thrown away, either.
    assert "zygote.started" not in log and "zygote.early_discarded" not in log
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
