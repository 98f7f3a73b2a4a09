"""Entry-point discovery for another interpreter (a plugin's own venv, other Python)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from takopi.plugins import (
    ENGINE_GROUP,
    PluginDiscoveryError,
    get_load_errors,
    list_entrypoints_for_python,
)


def _other_python() -> str:
    """Python 3.13 from pyenv (the project's second interpreter), else this one."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        proc = subprocess.run([pyenv, "prefix", "3.13.0"], capture_output=True, text=True)
        candidate = Path(proc.stdout.strip()) / "bin" / "python"
        if proc.returncode == 0 and candidate.exists():
            return str(candidate)
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python")))
    return found[-1] if found else sys.executable


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway venv (other interpreter) holding a fake plugin distribution."""
    root = tmp_path_factory.mktemp("foreign")
    venv = root / "venv"
    subprocess.run(
        [_other_python(), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    marker = root / "imported.log"
    info = site / "takopi_foreign-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Takopi_Foreign\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENGINE_GROUP}]\nforeign = foreign_plugin:BACKEND\nconfig = foreign_plugin:X\n\n"
        "[takopi.command_backends]\nhello = foreign_plugin:HELLO\n"
    )
    (site / "foreign_plugin.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\nraise SystemExit('must not import')\n"
    )
    return python, marker


@pytest.mark.timeout(120)
def test_lists_entry_points_of_another_interpreter(plugin_venv: tuple[Path, Path]) -> None:
    python, marker = plugin_venv
    eps = list_entrypoints_for_python(str(python), ENGINE_GROUP, reserved_ids={"config"})
    assert [(ep.name, ep.value, ep.distribution, ep.python) for ep in eps] == [
        ("foreign", "foreign_plugin:BACKEND", "Takopi_Foreign", str(python))
    ]
    assert not marker.exists(), "discovery imported plugin code"
    assert any(e.name == "config" and "reserved" in e.error for e in get_load_errors())
    # the venv has no takopi: nothing from this interpreter leaks in
    assert all(ep.name != "codex" for ep in eps)
    commands = list_entrypoints_for_python(str(python), "takopi.command_backends")
    assert [ep.name for ep in commands] == ["hello"]
    allowed = list_entrypoints_for_python(str(python), ENGINE_GROUP, allowlist=["someone-else"])
    assert allowed == []
    allowed = list_entrypoints_for_python(str(python), ENGINE_GROUP, allowlist=["takopi-foreign"])
    assert [ep.name for ep in allowed] == ["config", "foreign"]  # no reserved ids given


def test_other_interpreter_really_is_another_python(plugin_venv: tuple[Path, Path]) -> None:
    python, _ = plugin_venv
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    ).stdout.strip()
    assert version != sys.prefix


def test_missing_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PluginDiscoveryError, match="cannot run plugin interpreter"):
        list_entrypoints_for_python(str(tmp_path / "nope" / "python"), ENGINE_GROUP)


def test_garbage_output_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'not json'\n")
    fake.chmod(0o755)
    with pytest.raises(PluginDiscoveryError, match="unreadable entry points"):
        list_entrypoints_for_python(str(fake), ENGINE_GROUP)
    failing = tmp_path / "python-fail"
    failing.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(PluginDiscoveryError, match=r"failed \(rc=3\): boom"):
        list_entrypoints_for_python(str(failing), ENGINE_GROUP)
