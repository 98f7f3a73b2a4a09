"""Fetching one plugin distribution (without its dependencies) and reading its metadata.

``pip download --no-deps --ignore-requires-python`` does the fetching, so the user's pip
configuration (index, find-links, proxy, certificates) applies and a version is chosen even
when its Requires-Python excludes the running interpreter: deciding what to do about that is
the caller's job (it may pick another interpreter). An sdist is turned into a wheel with
``pip wheel``, so every fetched distribution ends up as one wheel whose METADATA and
``entry_points.txt`` can be read without installing or importing anything.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugins import COMMAND_GROUP, ENGINE_GROUP, TRANSPORT_GROUP

PLUGIN_GROUPS = (ENGINE_GROUP, TRANSPORT_GROUP, COMMAND_GROUP)

_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
_NETWORK_MARKERS = (
    ": connection error:",  # pip -v: "Could not fetch URL ...: connection error: ..."
    "NewConnectionError",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "Connection refused",
    "Network is unreachable",
    "ProxyError",
    "SSLError",
)


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """What the user asked for: a requirement (``name[extra]==1.0``) or a local archive."""

    text: str
    """The requirement string, or the absolute path of a local archive."""
    name: str | None
    """The canonical distribution name; None for a local archive (known after fetching)."""
    extras: frozenset[str] = frozenset()
    pinned: bool = False
    """True when the request names a version, a URL or a file (upgrade keeps it)."""

    @property
    def is_path(self) -> bool:
        return self.name is None


@dataclass(frozen=True, slots=True)
class EntryPointSpec:
    """One takopi entry point declared by a distribution."""

    group: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FetchedDist:
    """A fetched plugin distribution: its wheel and what its metadata declares."""

    request: PluginRequest
    name: str
    version: str
    requires_python: str | None
    requires_dist: tuple[str, ...]
    entry_points: tuple[EntryPointSpec, ...]
    wheel: Path

    @property
    def key(self) -> str:
        """The canonical distribution name (``takopi-cron``)."""
        return canonicalize_name(self.name)

    def describe(self) -> str:
        return f"{self.name} {self.version}"


def parse_request(text: str) -> PluginRequest:
    """Parse one ``install`` argument; :class:`PluginEnvError` when it is neither a valid
    requirement nor an existing archive."""
    raw = text.strip()
    looks_like_path = os.sep in raw or raw.endswith(_ARCHIVE_SUFFIXES)
    if looks_like_path:
        path = Path(raw).expanduser()
        if path.is_file():
            return PluginRequest(str(path.resolve()), None, pinned=True)
        if raw.endswith(_ARCHIVE_SUFFIXES) and "@" not in raw:
            raise PluginEnvError(f"{raw}: no such file")
    try:
        req = Requirement(raw)
    except InvalidRequirement as exc:
        raise PluginEnvError(f"{raw!r} is not a valid requirement: {exc}") from exc
    if req.marker is not None:
        raise PluginEnvError(f"{raw!r}: environment markers make no sense here")
    return PluginRequest(
        raw,
        canonicalize_name(req.name),
        frozenset(req.extras),
        pinned=bool(req.specifier) or req.url is not None,
    )


def pip_command() -> list[str]:
    """How to run pip for fetching: this interpreter's pip, else pip in a throwaway uv env."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    from takopi.plugin_envs.installers import find_uv

    uv = find_uv()
    if uv is not None:
        return [
            *(uv, "run", "--no-project", "--isolated", "--with", "pip"),
            *("--python", sys.executable, "python", "-m", "pip"),
        ]
    raise PluginEnvError(
        "fetching plugins needs pip (in takopi's own environment) or uv; neither was found"
    )


def _pip_failure(request: PluginRequest, stderr: str) -> PluginEnvError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")] or lines[-3:]
    detail = "\n  ".join(errors) or "no output"
    if any(marker in stderr for marker in _NETWORK_MARKERS):
        return PluginEnvError(
            f"cannot fetch {request.text}: the package index could not be reached "
            f"(network failure?)\n  {detail}"
        )
    if "No matching distribution found" in stderr:
        return PluginEnvError(
            f"cannot fetch {request.text}: no such distribution or version on the package "
            f"index\n  {detail}"
        )
    return PluginEnvError(f"cannot fetch {request.text}:\n  {detail}")


def _run_pip(pip: Sequence[str], args: Sequence[str], request: PluginRequest, cwd: Path) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        proc = subprocess.run(
            [*pip, *args],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=cwd,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise PluginEnvError(f"cannot fetch {request.text}: pip timed out") from exc
    except OSError as exc:
        raise PluginEnvError(f"cannot fetch {request.text}: cannot run pip: {exc}") from exc
    if proc.returncode != 0:
        raise _pip_failure(request, proc.stderr + "\n" + proc.stdout)


def fetch(request: PluginRequest, dest: Path, *, pip: Sequence[str] | None = None) -> FetchedDist:
    """Download ``request`` (no dependencies) into the empty directory ``dest`` and read it."""
    pip = list(pip) if pip is not None else pip_command()
    dest.mkdir(parents=True, exist_ok=True)
    download = dest / "download"
    download.mkdir()
    if request.is_path and request.text.endswith(".whl"):
        shutil.copy2(request.text, download)
    else:
        _run_pip(
            pip,
            [
                "download",
                "-vv",  # the only way pip names a connection failure when retries=0
                "--no-deps",
                "--ignore-requires-python",
                "--no-input",
                "--dest",
                str(download),
                request.text,
            ],
            request,
            dest,
        )
    files = sorted(p for p in download.iterdir() if p.is_file())
    if len(files) != 1:
        raise PluginEnvError(
            f"cannot fetch {request.text}: expected one archive, pip left {len(files)}"
        )
    archive = files[0]
    if archive.suffix != ".whl":
        built = dest / "built"
        _run_pip(
            pip,
            [
                "wheel",
                "--no-deps",
                "--ignore-requires-python",
                "--no-input",
                "--wheel-dir",
                str(built),
                str(archive),
            ],
            request,
            dest,
        )
        wheels = sorted(built.glob("*.whl"))
        if len(wheels) != 1:
            raise PluginEnvError(f"cannot build a wheel from {archive.name}")
        archive = wheels[0]
    fetched = read_wheel(archive, request)
    if request.name is not None and fetched.key != request.name:
        raise PluginEnvError(f"asked for {request.text} but the index served {fetched.describe()}")
    return fetched


def read_wheel(wheel: Path, request: PluginRequest) -> FetchedDist:
    """The metadata of ``wheel``; :class:`PluginEnvError` when it is not a readable wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            dist_info = sorted(
                {
                    n.split("/", 1)[0]
                    for n in names
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
                }
            )
            if len(dist_info) != 1:
                raise PluginEnvError(f"{wheel.name}: not a wheel (no single .dist-info)")
            metadata_text = archive.read(f"{dist_info[0]}/METADATA").decode("utf-8")
            ep_name = f"{dist_info[0]}/entry_points.txt"
            ep_text = archive.read(ep_name).decode("utf-8") if ep_name in names else ""
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise PluginEnvError(f"{wheel.name}: unreadable wheel: {exc}") from exc
    headers = HeaderParser().parsestr(metadata_text)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise PluginEnvError(f"{wheel.name}: METADATA has no Name or Version")
    return FetchedDist(
        request=request,
        name=str(name).strip(),
        version=str(version).strip(),
        requires_python=(str(headers.get("Requires-Python") or "").strip() or None),
        requires_dist=tuple(str(r).strip() for r in headers.get_all("Requires-Dist") or ()),
        entry_points=_plugin_entry_points(ep_text, wheel.name),
        wheel=wheel,
    )


def _plugin_entry_points(text: str, where: str) -> tuple[EntryPointSpec, ...]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise PluginEnvError(f"{where}: unreadable entry_points.txt: {exc}") from exc
    found = []
    for group in PLUGIN_GROUPS:
        if parser.has_section(group):
            for name, value in parser.items(group):
                found.append(EntryPointSpec(group, name.strip(), value.strip()))
    return tuple(found)


__all__ = [
    "PLUGIN_GROUPS",
    "EntryPointSpec",
    "FetchedDist",
    "PluginRequest",
    "fetch",
    "parse_request",
    "pip_command",
    "read_wheel",
]
