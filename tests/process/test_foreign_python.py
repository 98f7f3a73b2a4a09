"""A worker under another interpreter: ``[plugins.<id>] python = "<venv>/bin/python"``.

The Python 3.13 venv (takopi installed editable) is cached under
``~/.cache/takopi-tests/py313-<hash of pyproject.toml>`` so reruns are fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.shadowing import plant_shadows, shadow_hits
from tests.support.supervisor import REPO, SupervisorHarness, assert_no_leftovers
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(900)]


def _pyenv_313() -> str:
    out = subprocess.run(
        ["pyenv", "prefix", "3.13.0"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(out) / "bin" / "python")


def py313_venv() -> Path:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = Path.home() / ".cache" / "takopi-tests" / f"py313-{digest}"
    python = venv / "bin" / "python"
    marker = venv / ".takopi-ready"
    if marker.exists() and python.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Several test runs (engineers, CI shards) may want the same venv at once: one builds it.
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_pyenv_313(), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-e",
                str(REPO),
            ],
            check=True,
            timeout=800,
        )
        marker.write_text("ok\n")
    return python


def test_engine_worker_under_python_313(supervisor: SupervisorHarness) -> None:
    python = py313_venv()
    supervisor.write_config(extra=f'[plugins.scripted]\npython = "{python}"\n')
    supervisor.start()
    # Load-checked under its own interpreter too (a 3.13 probe), before the transport started.
    [engine] = [e for e in supervisor.control("status")["engines"] if e["id"] == "scripted"]
    assert (engine["status"], engine["offered"], engine["worker"]) == ("ok", True, "not-started")
    supervisor.send("cross-version answer=from-313")
    final = wait_until(lambda: supervisor.finals())[0]
    assert final["text"].startswith("done") and "from-313" in final["text"]
    worker = supervisor.worker("engine:scripted")
    assert worker["python"] == "3.13.0"
    assert worker["python_executable"] == str(python)
    transport = supervisor.worker("transport:recorder")
    assert transport["python"].startswith("3.11")
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)


def test_python_313_worker_ignores_shadowing_packages_in_its_cwd(
    supervisor: SupervisorHarness,
) -> None:
    # The supervisor (with -P) runs in a directory shadowing msgpack, zmq, anyio and takopi;
    # the 3.13 probe and worker, fresh interpreters started there, must not import them.
    python = py313_venv()
    hits = plant_shadows(supervisor.base)
    supervisor.write_config(extra=f'[plugins.scripted]\npython = "{python}"\n')
    supervisor.start(python_flags=("-P",))
    supervisor.send("cross-version answer=no-shadow")
    final = wait_until(lambda: supervisor.finals())[0]
    assert final["text"].startswith("done") and "no-shadow" in final["text"]
    assert supervisor.worker("engine:scripted")["python_executable"] == str(python)
    assert shadow_hits(hits) == ""
    assert supervisor.stop() == 0
    assert_no_leftovers(supervisor)
