"""What the fork server has imported when it forks each kind of worker: a transport worker
(forked first) must not inherit takopi's engine runners, an engine worker forked later must
(its first run does not wait for the import)."""

from __future__ import annotations

import psutil
import pytest

from tests.process.procmem import memory_contains
from tests.support.processes import fresh_python
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

CLAUDE_RUNNER_TEXT = b"runs Claude Code in print mode and translates its stream-json"
"""From the docstring of ``takopi.runners.claude``: in memory once the module is imported."""


def test_the_zygote_imports_no_runner_before_its_first_fork() -> None:
    code = (
        "import sys\n"
        "from takopi.worker.main import _preload, _preload_transport_host\n"
        "_preload(); _preload_transport_host()\n"
        "print(sorted(m for m in sys.modules if m.startswith('takopi.runners.') "
        "and m != 'takopi.runners.run_options'))\n"
        "print('sqlite3' in sys.modules, 'takopi.worker.transport' in sys.modules)\n"
        "import takopi.runners.opencode\n"
        "print('sqlite3' in sys.modules)\n"
    )
    assert fresh_python(code) == ["[]", "False True", "False"]


def test_a_forked_transport_holds_no_runner_and_a_forked_engine_does(
    supervisor: SupervisorHarness,
) -> None:
    supervisor.write_config()
    supervisor.start(secret_free_env=True)
    supervisor.send("hello answer=forked")  # the engine worker starts on first use
    assert "forked" in wait_until(lambda: supervisor.finals())[0]["text"]
    status = supervisor.control("status")
    pids = {w["name"]: w["pid"] for w in status["workers"]}
    assert [h["name"] for h in status["helpers"]] == ["zygote"]
    for pid in pids.values():  # forked, not started fresh: they keep the zygote's argv
        assert "--kind" not in psutil.Process(pid).cmdline()
    assert not memory_contains(pids["transport:recorder"], CLAUDE_RUNNER_TEXT)
    assert memory_contains(pids["engine:scripted"], CLAUDE_RUNNER_TEXT)
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
