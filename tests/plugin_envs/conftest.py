"""Fixtures for the managed plugin environment tests: the ``takopi`` CLI of this venv, a
controlled set of interpreters (a fake ``$PYENV_ROOT`` linking real pyenv installations, and
a ``PATH`` without any Python), a config dir, and local plugin wheels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TAKOPI = str(BIN / "takopi")


def real_interpreter_prefix(minor: str) -> Path:
    """The installation prefix of the newest real Python ``minor`` (pyenv, else PATH)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = sorted(
        (p for p in root.glob(f"{minor}.*") if re.fullmatch(rf"{re.escape(minor)}\.\d+", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    if candidates:
        return candidates[-1]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(directory) / f"python{minor}"
        if exe.exists():
            return exe.resolve().parent.parent
    pytest.fail(f"Python {minor} is needed (pyenv install {minor}); see scripts/bootstrap.sh")


@dataclass
class PluginEnvCli:
    """Runs ``takopi plugins ...`` against one config file with a fixed interpreter set."""

    base: Path
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.base / "takopi.toml"

    @property
    def envs_root(self) -> Path:
        return self.base / "plugin-envs"

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TAKOPI, "plugins", *args, "--config-path", str(self.config)],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = self.run(*args, env=env)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = self.run(*args, env=env)
        assert proc.returncode == 1, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr

    def store_entries(self) -> list[str]:
        """Everything in the store (distribution dirs, the lock), relative, sorted."""
        if not self.envs_root.exists():
            return []
        return sorted(
            str(p.relative_to(self.envs_root))
            for p in self.envs_root.rglob("*")
            if len(p.relative_to(self.envs_root).parts) <= 2
        )

    def env_dirs(self) -> list[Path]:
        """Every environment directory (not ``current`` links) under the store."""
        if not self.envs_root.exists():
            return []
        return sorted(
            p
            for d in self.envs_root.iterdir()
            if d.is_dir()
            for p in d.iterdir()
            if p.name != "current"
        )


def make_fake_pyenv(root: Path, minors: Sequence[str]) -> Path:
    """A ``$PYENV_ROOT`` whose ``versions/`` links the real installations of ``minors``."""
    versions = root / "versions"
    versions.mkdir(parents=True)
    for minor in minors:
        prefix = real_interpreter_prefix(minor)
        (versions / prefix.name).symlink_to(prefix)
    return root


@pytest.fixture
def cli(tmp_path: Path) -> PluginEnvCli:
    """Interpreters visible to takopi: this one (3.11), 3.12 and 3.13 via the fake pyenv."""
    base = tmp_path / "cfg"
    base.mkdir()
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKOPI", "VIRTUAL_ENV"))}
    env.update(
        PYENV_ROOT=str(make_fake_pyenv(tmp_path / "pyenv", ("3.12", "3.13"))),
        PATH=str(empty_bin),
        TAKOPI_LOG_COLOR="0",
    )
    return PluginEnvCli(base, env)


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """A find-links directory for locally built plugin wheels."""
    path = tmp_path / "wheels"
    path.mkdir()
    return path


def local_index_env(wheels: Path) -> dict[str, str]:
    """pip settings that fetch plugins from ``wheels`` only (no index, no network)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_CONFIG_FILE": os.devnull}
