"""How to install *this* takopi into a plugin environment.

The reference takopi is published on PyPI under the same name, so "takopi" as a requirement
would pull the wrong project. A plugin environment instead gets the running installation:

- an editable checkout (``direct_url.json`` says ``dir_info.editable``) is installed editable
  from the same directory, so the plugin environment follows the checkout;
- anything else is repacked into a wheel from the installed files (``RECORD``), byte for byte
  what is running now, whatever index or file it originally came from.

Either way it is passed to the installer as an explicit requirement next to the plugin, which
pins the name ``takopi`` to it for the whole resolution.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import takopi
from takopi.plugin_envs.errors import PluginEnvError

_SKIPPED_DIST_INFO = frozenset(
    {"RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"}
)
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same installation gives the same bytes


@dataclass(frozen=True, slots=True)
class TakopiSource:
    """This takopi as installer arguments."""

    version: str
    args: tuple[str, ...]
    """``("-e", "/checkout")`` or ``("/tmp/.../takopi-<version>-py3-none-any.whl",)``."""
    description: str
    editable_path: str | None = None


def running_distribution() -> metadata.Distribution:
    """The installed distribution the imported ``takopi`` package belongs to."""
    try:
        dist = metadata.distribution("takopi")
    except metadata.PackageNotFoundError as exc:
        raise PluginEnvError(
            "this takopi has no installed distribution metadata; install it with pip or uv"
        ) from exc
    if dist.version != takopi.__version__:
        raise PluginEnvError(
            f"installed takopi metadata says {dist.version} but the running takopi is "
            f"{takopi.__version__}; reinstall takopi"
        )
    return dist


def editable_checkout(dist: metadata.Distribution) -> Path | None:
    """The checkout an editable install points at (None when not editable)."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file":
        return None
    path = Path(unquote(url.path))
    package = Path(takopi.__file__).resolve().parent
    if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
        return None
    if not package.is_relative_to(path.resolve()):
        return None  # metadata of another checkout than the one running
    return path


def this_takopi(build_dir: Path) -> TakopiSource:
    """The installer arguments for the running takopi (may build a wheel in ``build_dir``)."""
    dist = running_distribution()
    checkout = editable_checkout(dist)
    if checkout is not None:
        return TakopiSource(
            dist.version, ("-e", str(checkout)), f"editable checkout {checkout}", str(checkout)
        )
    wheel = build_wheel_from_installation(dist, build_dir)
    return TakopiSource(dist.version, (str(wheel),), f"wheel rebuilt from {dist.locate_file('')}")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _wheel_tags(dist: metadata.Distribution) -> tuple[bool, list[str]]:
    text = dist.read_text("WHEEL") or ""
    headers = HeaderParser().parsestr(text)
    tags = [str(t).strip() for t in headers.get_all("Tag") or () if str(t).strip()]
    purelib = str(headers.get("Root-Is-Purelib", "true")).strip().lower() == "true"
    return purelib, tags or ["py3-none-any"]


def build_wheel_from_installation(dist: metadata.Distribution, dest: Path) -> Path:
    """Repack the installed files of ``dist`` (its ``RECORD``) into a wheel in ``dest``.

    Scripts outside site-packages and byte-code are left out (installers regenerate both).
    Raises :class:`PluginEnvError` for an editable or incomplete installation.
    """
    files = dist.files
    if not files:
        raise PluginEnvError(
            f"cannot rebuild takopi {dist.version}: its installation has no RECORD"
        )
    root = Path(str(dist.locate_file("")))
    dist_info = next(
        (f.parts[0] for f in files if len(f.parts) == 2 and f.parts[1] == "METADATA"), None
    )
    if dist_info is None or not dist_info.endswith(".dist-info"):
        raise PluginEnvError(f"cannot rebuild takopi {dist.version}: no .dist-info in its RECORD")
    purelib, tags = _wheel_tags(dist)
    name = dist.metadata["Name"].replace("-", "_").lower()
    filename = f"{name}-{dist.version}-{tags[0]}.whl"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / filename
    record: list[str] = []
    try:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:

            def add(arcname: str, data: bytes) -> None:
                info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
                record.append(f"{arcname},{_record_hash(data)},{len(data)}")

            for entry in sorted(files, key=str):
                parts = PurePosixPath(str(entry)).parts
                if not parts or parts[0] == ".." or "__pycache__" in parts:
                    continue
                if entry.suffix in (".pyc", ".pyo"):
                    continue
                if parts[0] == dist_info and len(parts) == 2 and parts[1] in _SKIPPED_DIST_INFO:
                    continue
                if parts[-1].startswith("__editable__"):
                    raise PluginEnvError(
                        "cannot rebuild takopi from an editable install whose checkout is gone"
                    )
                try:
                    data = (root / str(entry)).read_bytes()
                except OSError as exc:
                    raise PluginEnvError(
                        f"cannot rebuild takopi {dist.version}: {entry} is missing ({exc})"
                    ) from exc
                add("/".join(parts), data)
            wheel_meta = "Wheel-Version: 1.0\nGenerator: takopi plugin_envs\n"
            wheel_meta += f"Root-Is-Purelib: {'true' if purelib else 'false'}\n"
            wheel_meta += "".join(f"Tag: {tag}\n" for tag in tags)
            add(f"{dist_info}/WHEEL", wheel_meta.encode())
            record.append(f"{dist_info}/RECORD,,")
            info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, "\n".join(record) + "\n")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


__all__ = [
    "TakopiSource",
    "build_wheel_from_installation",
    "editable_checkout",
    "running_distribution",
    "this_takopi",
]
