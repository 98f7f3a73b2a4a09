"""scripts/install-engines.sh: pinned versions land in the cache and reruns are no-ops."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.real_engines.engines import INSTALL_SCRIPT, PINNED

pytestmark = [pytest.mark.real_engines, pytest.mark.timeout(120)]


def test_rerun_is_a_no_op_that_prints_the_bin_dir(engines_bin: Path) -> None:
    env = dict(os.environ)
    env["TAKOPI_ENGINES_DIR"] = str(engines_bin.parent.parent)
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(engines_bin)]
    assert "already present" in proc.stderr
    assert "installing" not in proc.stderr


@pytest.mark.parametrize("engine", sorted(PINNED))
def test_pinned_version_is_installed_and_runs(
    engine: str, engines_bin: Path, tmp_path: Path
) -> None:
    package, version = PINNED[engine]
    manifest = engines_bin.parent / package / "package.json"
    assert json.loads(manifest.read_text())["version"] == version
    proc = subprocess.run(
        [str(engines_bin / engine), "--version"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": f"{engines_bin}:/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert version in proc.stdout + proc.stderr  # pi prints its version on stderr
