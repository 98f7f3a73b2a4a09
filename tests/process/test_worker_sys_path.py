"""A worker never imports from the directory it was started in.

``python -m`` puts the current directory first on ``sys.path``; workers inherit the
supervisor's cwd, which may be a project directory holding its own ``msgpack/`` or ``zmq/``.
Here the supervisor runs from such a directory (itself with ``-P``, as the ``takopi`` console
script would not put the cwd on its path either) and every worker must still use the real
modules. The shadowing packages record who imported them, then refuse to load.
"""

from __future__ import annotations

import pytest

from tests.support.shadowing import plant_shadows, shadow_hits
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def run_from_shadowing_cwd(
    supervisor: SupervisorHarness, *args: str, env: dict[str, str] | None = None
) -> None:
    hits = plant_shadows(supervisor.base)
    supervisor.write_config()
    supervisor.start(args=args, env=env, python_flags=("-P",))
    supervisor.send("hello answer=real-modules")
    final = wait_until(lambda: supervisor.finals(), what="a final answer")[0]
    assert final["text"].startswith("done") and "real-modules" in final["text"], final
    assert shadow_hits(hits) == ""
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
    assert shadow_hits(hits) == ""


def test_fresh_workers_ignore_shadowing_packages_in_their_cwd(
    supervisor: SupervisorHarness,
) -> None:
    # No fork server: the transport, the engine probe and the engine are fresh interpreters.
    run_from_shadowing_cwd(supervisor, "--no-zygote")


def test_fork_server_ignores_shadowing_packages_in_its_cwd(supervisor: SupervisorHarness) -> None:
    # A credential-named variable keeps the supervisor from forking the fork server: it is
    # spawned as a fresh interpreter, and every worker it forks inherits its sys.path.
    run_from_shadowing_cwd(supervisor, env={"SHADOW_TEST_API_TOKEN": "t" * 48})
