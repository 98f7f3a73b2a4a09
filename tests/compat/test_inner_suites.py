"""Runs the in-process compatibility tests (``inner/``) under each plugin's own interpreter.

The published plugins live in venvs next to this repo's takopi (editable): takopi-scripts in a
Python 3.11 venv, the plugins using PEP 695 syntax in a Python 3.13 venv. Each inner module is a
normal pytest module run there; a failure shows its full output here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.compat.plugins import PINS, REPO, venv_python

INNER_SUITES = [
    ("py311", "test_command_scripts.py"),
    ("py313", "test_command_cron.py"),
    ("py313", "test_engine_plugins.py"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("venv", "module"), INNER_SUITES, ids=[m for _, m in INNER_SUITES])
def test_inner_suite(compat_venvs: Path, venv: str, module: str) -> None:
    env = dict(os.environ, TAKOPI_COMPAT_INNER="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [
            str(venv_python(compat_venvs, venv)),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "error::pytest.PytestUnraisableExceptionWarning",
            f"tests/compat/inner/{module}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-12000:]
    assert " passed" in output and " failed" not in output, output[-4000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("venv", ["py311", "py313"])
def test_venvs_hold_the_pinned_plugins_and_this_takopi(compat_venvs: Path, venv: str) -> None:
    probe = (
        "import json, sys, importlib.metadata as md, takopi\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps({'python': list(sys.version_info[:2]), 'takopi': takopi.__file__,\n"
        "  'takopi_version': md.version('takopi'),\n"
        "  'plugins': {n: md.version(n) for n in names}}))\n"
    )
    pins = [pin for pin in PINS if pin.venv == venv]
    proc = subprocess.run(
        [
            str(venv_python(compat_venvs, venv)),
            "-c",
            probe,
            json.dumps([p.distribution for p in pins]),
        ],
        capture_output=True,
        text=True,
        timeout=50,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["python"] == ([3, 11] if venv == "py311" else [3, 13])
    assert Path(info["takopi"]).resolve().is_relative_to(REPO / "takopi")
    assert info["takopi_version"].startswith("0.22.")  # plugins pin takopi>=0.22,<0.23
    assert info["plugins"] == {pin.distribution: pin.version for pin in pins}
