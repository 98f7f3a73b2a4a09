"""A worker started fresh is told its plugin's entry point by the supervisor and imports it
directly: it never reads the distributions' metadata (``importlib.metadata`` and what comes
with it: email, zipfile, csv...). A worker not told falls back to the scan."""

from __future__ import annotations

import subprocess
import sys

import pytest

from takopi.plugins import (
    ENGINE_GROUP,
    PluginEntryPoint,
    PluginLoadFailed,
    clear_load_errors,
    find_entrypoint,
    load_entrypoint,
    remember_entrypoint,
)
from takopi.worker.codes import EXIT_USAGE
from tests.process.procmem import memory_contains
from tests.support.processes import fresh_python
from tests.support.supervisor import SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

METADATA_TEXT = b"Get all ``Distribution`` instances in the current environment."
"""From the docstring of ``importlib.metadata.distributions``: in memory once imported."""


def test_fresh_workers_never_import_importlib_metadata(supervisor: SupervisorHarness) -> None:
    supervisor.write_config()
    supervisor.start(args=("--no-zygote", "--no-standby"))
    supervisor.send("hello answer=fresh")  # the engine worker starts on first use
    assert "fresh" in wait_until(lambda: supervisor.finals())[0]["text"]
    workers = supervisor.control("status")["workers"]
    assert {w["name"] for w in workers} == {"engine:scripted", "transport:recorder"}
    assert memory_contains(supervisor.proc.pid, METADATA_TEXT)  # it listed the plugins
    for worker in workers:
        assert not memory_contains(worker["pid"], METADATA_TEXT), worker["name"]
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_a_worker_told_its_entry_point_loads_it_without_the_metadata() -> None:
    code = (
        "import sys\n"
        "import takopi.worker.main as main\n"
        "args = main._parse(['--kind', 'engine', '--id', 'codex', '--entrypoint',\n"
        "    'takopi.runners.codex:BACKEND', '--distribution', 'takopi'])\n"
        "main._remember_entrypoint(args)\n"
        "from takopi.engines import get_backend\n"
        "print(get_backend('codex').id, main._distribution('engine', 'codex'))\n"
        "print(sorted({'importlib.metadata', 'email', 'zipfile', 'csv', 'argparse'}\n"
        "    & set(sys.modules)))\n"
        "print(main._distribution('engine', 'claude'), 'importlib.metadata' in sys.modules)\n"
    )
    assert fresh_python(code) == ["codex takopi", "[]", "takopi True"]


def test_a_remembered_entry_point_is_still_validated() -> None:
    clear_load_errors()
    try:
        ep = PluginEntryPoint(ENGINE_GROUP, "codex", "takopi.runners.codex:NOPE", "other-dist")
        remember_entrypoint(ep)
        assert find_entrypoint(ENGINE_GROUP, "codex") == ep
        with pytest.raises(PluginLoadFailed, match="NOPE"):
            load_entrypoint(ENGINE_GROUP, "codex")
        # Not allowed by the allowlist: the scan decides (takopi's own codex passes it).
        found = find_entrypoint(ENGINE_GROUP, "codex", allowlist=["takopi"])
        assert (found.value, found.distribution) == ("takopi.runners.codex:BACKEND", "takopi")
    finally:
        from takopi import plugins

        plugins._known.clear()
        clear_load_errors()


@pytest.mark.parametrize(
    "argv",
    [["--kind", "bogus"], ["--secret-fd", "x"], ["--nope"], ["--kind", "engine", "stray"]],
)
def test_a_bad_worker_command_line_is_a_usage_error(argv: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "takopi.worker", *argv], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == EXIT_USAGE
    assert "usage: python -m takopi.worker" in out.stderr
    assert "error:" in out.stderr.splitlines()[-1] and "Traceback" not in out.stderr


def test_worker_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "takopi.worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for option in ("--kind", "--entrypoint", "--distribution", "--zygote", "--secret-fd"):
        assert option in out.stdout
