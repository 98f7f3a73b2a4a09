"""Creating a venv and installing into it: with uv when available, with pip otherwise.

uv (a takopi dependency) builds a venv for any interpreter without needing ``ensurepip`` and
installs from a shared cache in about a second; pip is the fallback for installations where
the uv binary is missing or unusable. Both are driven as subprocesses with the user's own
configuration (``UV_*`` / ``PIP_*`` variables, config files) left in effect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from packaging.version import Version

from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.interpreters import Interpreter, parse_requires_python

_TIMEOUT_S = 1800.0
INSTALLER_CHOICES = ("auto", "uv", "pip")


def find_uv() -> str | None:
    """The uv binary: the one of the ``uv`` package takopi depends on, else ``uv`` on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _run(argv: Sequence[str], what: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise PluginEnvError(f"{what}: timed out after {_TIMEOUT_S:.0f}s") from exc
    except OSError as exc:
        raise PluginEnvError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        text = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        detail = "\n  ".join(line for line in text[-15:] if line.strip())
        raise PluginEnvError(f"{what} failed:\n  {detail}")


def satisfying_version(requires_python: str | None, near: Version) -> str | None:
    """A ``major.minor`` inside ``requires_python``, as close to ``near`` as possible."""
    spec = parse_requires_python(requires_python)
    if spec is None:
        return None
    for distance in range(0, 40):
        for minor in (near.minor + distance, near.minor - distance):
            if minor < 0:
                continue
            for patch in (0, 50):
                if spec.contains(Version(f"{near.major}.{minor}.{patch}"), prereleases=True):
                    return f"{near.major}.{minor}"
    return None


class Installer(ABC):
    """What building a plugin environment needs from an installer: a venv, and installs
    into it by the installer's own command line."""

    name: str
    install_command: str
    """How the install step is named in error messages (``uv pip install``)."""

    @abstractmethod
    def create_venv(self, base: Interpreter, path: Path) -> None:
        """Create an empty venv at ``path`` from ``base``."""

    def install(
        self,
        python: Path,
        args: Sequence[str],
        *,
        no_deps: bool = False,
        ignore_requires_python: str | None = None,
        what: str = "",
    ) -> None:
        """Install ``args`` (requirements, ``-e dir``, wheel paths) into the venv of ``python``.

        ``ignore_requires_python`` is the Requires-Python to override (with ``no_deps``, for
        the plugin's own wheels only); ``what`` describes the step in error messages.
        """
        argv = self._install_argv(python)
        if no_deps:
            argv.append("--no-deps")
        if ignore_requires_python:
            argv += self._requires_python_override(python, ignore_requires_python)
        _run(
            [*argv, *args],
            what or f"{self.install_command} " + " ".join(args),
            python.parent.parent,
        )

    @abstractmethod
    def _install_argv(self, python: Path) -> list[str]:
        """The install command for the venv of ``python``, before any option."""

    @abstractmethod
    def _requires_python_override(self, python: Path, requires_python: str) -> list[str]:
        """The options that install despite the wheels' ``requires_python``."""


class UvInstaller(Installer):
    """``uv venv`` + ``uv pip install``."""

    name = "uv"
    install_command = "uv pip install"

    def __init__(self, uv: str) -> None:
        self.uv = uv

    def create_venv(self, base: Interpreter, path: Path) -> None:
        _run(
            [self.uv, "venv", "--no-project", "--python", base.path, str(path)],
            f"creating a venv with {base.describe()}",
            path.parent,
        )

    def _install_argv(self, python: Path) -> list[str]:
        return [self.uv, "pip", "install", "--python", str(python)]

    def _requires_python_override(self, python: Path, requires_python: str) -> list[str]:
        # uv has no --ignore-requires-python: resolve these wheels as if the venv ran a
        # version their Requires-Python accepts (dependencies were installed before,
        # resolved for the real interpreter).
        from takopi.plugin_envs.interpreters import probe

        interp = probe(python)
        near = interp.version if interp else Version("3.11")
        version = satisfying_version(requires_python, near)
        if version is None:
            raise PluginEnvError(f"Requires-Python {requires_python!r} matches no Python version")
        return ["--python-version", version]


class PipInstaller(Installer):
    """``python -m venv`` + the venv's own ``pip install``."""

    name = "pip"
    install_command = "pip install"

    def create_venv(self, base: Interpreter, path: Path) -> None:
        _run(
            [base.path, "-m", "venv", str(path)],
            f"creating a venv with {base.describe()} (python -m venv; on Debian/Ubuntu it "
            f"needs the python{base.minor}-venv package)",
            path.parent,
        )

    def _install_argv(self, python: Path) -> list[str]:
        return [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]

    def _requires_python_override(self, python: Path, requires_python: str) -> list[str]:
        return ["--ignore-requires-python"]


def choose_installer(choice: str = "auto") -> Installer:
    """The installer for ``choice`` (``auto``: uv when its binary is found, else pip)."""
    if choice not in INSTALLER_CHOICES:
        raise PluginEnvError(f"unknown installer {choice!r}; use one of {INSTALLER_CHOICES}")
    if choice in ("auto", "uv"):
        uv = find_uv()
        if uv is not None and os.access(uv, os.X_OK):
            return UvInstaller(uv)
        if choice == "uv":
            raise PluginEnvError("--installer uv: the uv binary was not found")
    return PipInstaller()


__all__ = [
    "INSTALLER_CHOICES",
    "Installer",
    "PipInstaller",
    "UvInstaller",
    "choose_installer",
    "find_uv",
    "satisfying_version",
]
