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
from tests.support.supervisor import PLUGIN_DIST, SupervisorHarness, assert_no_leftovers
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


def test_a_forked_fork_server_drops_the_supervisors_cwd_entry(
    supervisor: SupervisorHarness,
) -> None:
    # The supervisor runs as plain ``python -m`` (its cwd first on its own sys.path) and,
    # with a secret-free environment, forks the fork server from itself. The plugin
    # package shadowed in the cwd is imported only by workers, never by the supervisor:
    # every worker must still get the real one. The scripted agent CLI (``python -m
    # takopi_proctest.agent``, run in this directory like user code) is let through to
    # the real package: importing from its cwd is its own business.
    hits = supervisor.base / "shadow-hits.log"
    package = supervisor.base / "takopi_proctest"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys\n"
        "if sys.argv[:1] == ['-m']:  # being located by python -m: the agent CLI\n"
        f"    __path__[:] = [{str(PLUGIN_DIST / 'takopi_proctest')!r}]\n"
        "else:\n"
        f"    open({str(hits)!r}, 'a').write(f'takopi_proctest by {{sys.argv!r}}\\n')\n"
        "    raise ImportError('shadow takopi_proctest from the cwd')\n"
    )
    supervisor.write_config()
    supervisor.start(secret_free_env=True)
    started = [line for line in supervisor.log().splitlines() if "zygote.started" in line]
    assert len(started) == 1 and "forked=True" in started[0], started
    supervisor.send("hello answer=real-plugin")
    final = wait_until(lambda: supervisor.finals(), what="a final answer")[0]
    assert final["text"].startswith("done") and "real-plugin" in final["text"], final
    assert supervisor.worker("engine:scripted")["pid"] != supervisor.proc.pid
    assert shadow_hits(hits) == ""
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
