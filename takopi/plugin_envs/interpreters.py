"""Finding the Python interpreters installed on this machine, and picking one for a plugin.

Candidates are the interpreter running takopi, every pyenv version (``$PYENV_ROOT``, else
``~/.pyenv``) and every ``python3`` / ``python3.N`` on ``PATH``. Each one is asked for its version
and its PEP 508 marker environment (one short subprocess each), duplicates (venvs, shims and
symlinks of the same installation) are folded together, and interpreters older than takopi's
own minimum are dropped: takopi itself must run beside the plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from takopi.plugin_envs.errors import PluginEnvError

TAKOPI_REQUIRES_PYTHON = SpecifierSet(">=3.11")
"""takopi's own Requires-Python: every plugin environment also runs takopi."""

_PATH_NAME_RE = re.compile(r"^python3(\.\d+)?$")

# Runs inside the candidate: version, identity of the installation, PEP 508 environment.
_PROBE = r"""
import json, os, platform, sys
def fmt(info):
    text = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        text += info.releaselevel[0] + str(info.serial)
    return text
base = getattr(sys, "_base_executable", None) or sys.executable
markers = {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
sys.stdout.write(json.dumps({
    "version": platform.python_version(),
    "base": os.path.realpath(base),
    "prefix": os.path.realpath(sys.base_prefix),
    "markers": markers,
}))
"""


@dataclass(frozen=True, slots=True)
class Interpreter:
    """One Python installation that can host a plugin environment."""

    path: str
    """The executable to build venvs from (the base installation, not a venv or shim)."""
    version: Version
    prefix: str
    markers: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    running: bool = False
    """True for the interpreter this takopi runs on."""

    @property
    def minor(self) -> str:
        """``3.13`` for 3.13.0."""
        return f"{self.version.major}.{self.version.minor}"

    def describe(self) -> str:
        """``Python 3.13.0 (/path/to/python3.13)``."""
        return f"Python {self.version} ({self.path})"

    def satisfies(self, requires_python: str | None) -> bool:
        """Whether this version is inside ``requires_python`` (None or empty: always)."""
        spec = parse_requires_python(requires_python)
        return spec is None or spec.contains(self.version, prereleases=True)


def parse_requires_python(text: str | None) -> SpecifierSet | None:
    """``Requires-Python`` as a specifier set; None when absent or unreadable."""
    if not text or not text.strip():
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def probe(executable: str | os.PathLike[str], *, timeout: float = 20.0) -> Interpreter | None:
    """Ask ``executable`` who it is; None if it cannot run or answers nonsense."""
    try:
        proc = subprocess.run(
            [str(executable), "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
        version = Version(str(data["version"]))
        markers = {str(k): str(v) for k, v in dict(data["markers"]).items()}
        return Interpreter(str(data["base"]), version, str(data["prefix"]), markers)
    except (ValueError, KeyError, TypeError):
        return None


def _pyenv_candidates() -> Iterator[Path]:
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root).expanduser() / "versions"
    try:
        entries = sorted(versions.iterdir())
    except OSError:
        return
    for entry in entries:
        for name in ("python3", "python"):
            candidate = entry / "bin" / name
            if candidate.exists():
                yield candidate
                break


def _path_candidates() -> Iterator[Path]:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if _PATH_NAME_RE.match(name):
                candidate = Path(directory) / name
                if os.access(candidate, os.X_OK) and candidate.is_file():
                    yield candidate


def discover(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Interpreter]:
    """Every usable interpreter: this one first, then pyenv versions, then ``PATH``.

    Usable means it runs, is not older than takopi's minimum, and is not a duplicate of one
    already found (same base installation).
    """
    found: list[Interpreter] = []
    seen: set[str] = set()
    running = probe(sys.executable)
    if running is not None:
        running = Interpreter(
            running.path, running.version, running.prefix, running.markers, running=True
        )
    ordered: list[Interpreter | Path | str | os.PathLike[str]] = [
        *([running] if running else []),
        *extra,
        *_pyenv_candidates(),
        *_path_candidates(),
    ]
    for candidate in ordered:
        interp = candidate if isinstance(candidate, Interpreter) else probe(candidate)
        if interp is None or interp.prefix in seen:
            continue
        seen.add(interp.prefix)
        if TAKOPI_REQUIRES_PYTHON.contains(interp.version, prereleases=True):
            found.append(interp)
    return found


def resolve_request(request: str, available: list[Interpreter]) -> Interpreter:
    """The interpreter ``--python`` names: a version (``3.13``, ``3.13.0``), a command on
    ``PATH`` (``python3.13``) or a path. Raises :class:`PluginEnvError` when none matches."""
    text = request.strip()
    if re.fullmatch(r"\d+(\.\d+){1,2}", text):
        matches = [i for i in available if text in (str(i.version), i.minor)]
        if matches:
            return max(matches, key=lambda i: (i.version, i.running))
        raise PluginEnvError(
            f"no installed Python {text} found (pyenv or PATH); available: "
            + (", ".join(str(i.version) for i in available) or "none")
        )
    executable = text if os.sep in text else shutil.which(text)
    if executable is None:
        raise PluginEnvError(f"--python {text}: no such command on PATH")
    interp = probe(executable)
    if interp is None:
        raise PluginEnvError(f"--python {text}: {executable} does not run as a Python interpreter")
    if not TAKOPI_REQUIRES_PYTHON.contains(interp.version, prereleases=True):
        raise PluginEnvError(
            f"--python {text} is Python {interp.version}; takopi needs {TAKOPI_REQUIRES_PYTHON}"
        )
    return interp


def newest_satisfying(
    available: Iterable[Interpreter], requires_python: str | None
) -> Interpreter | None:
    """The newest interpreter inside ``requires_python`` (the running one wins a tie)."""
    matching = [i for i in available if i.satisfies(requires_python)]
    if not matching:
        return None
    return max(matching, key=lambda i: (i.version, i.running))


__all__ = [
    "TAKOPI_REQUIRES_PYTHON",
    "Interpreter",
    "discover",
    "newest_satisfying",
    "parse_requires_python",
    "probe",
    "resolve_request",
]
