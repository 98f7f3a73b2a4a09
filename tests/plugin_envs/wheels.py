"""Building small takopi plugin wheels for the tests (written directly with zipfile)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

COMMAND_GROUP = "takopi.command_backends"

COMMAND_MODULE = """
import sys
from takopi.api import CommandResult


class _Command:
    id = "{plugin_id}"
    description = "test plugin {plugin_id}"

    async def handle(self, ctx):
        return CommandResult(text=f"{plugin_id} on {{sys.version_info[0]}}.{{sys.version_info[1]}}")


BACKEND = _Command()
"""

PEP695_PREFIX = "type Alias = int  # PEP 695: a SyntaxError before Python 3.12\n"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_plugin_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    commands: Sequence[str] = (),
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
    pep695: bool = False,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """A pure-Python wheel named ``name`` whose package declares one command per id."""
    module = name.replace("-", "_")
    files: dict[str, str] = {}
    eps = []
    for plugin_id in commands:
        source = COMMAND_MODULE.format(plugin_id=plugin_id)
        files[f"{module}/{plugin_id}.py"] = (PEP695_PREFIX if pep695 else "") + source
        eps.append(f"{plugin_id} = {module}.{plugin_id}:BACKEND")
    files[f"{module}/__init__.py"] = ""
    files.update(extra_files or {})
    dist_info = f"{module}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {req}" for req in requires_dist]
    files[f"{dist_info}/METADATA"] = "\n".join(meta) + "\n"
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: takopi-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if eps:
        files[f"{dist_info}/entry_points.txt"] = f"[{COMMAND_GROUP}]\n" + "\n".join(eps) + "\n"
    record = [
        f"{path},{_digest(text.encode())},{len(text.encode())}" for path, text in files.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel
