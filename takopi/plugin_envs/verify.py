"""Checking a freshly built plugin environment before anything points at it.

One subprocess in the new venv reports which takopi it imports (version, file, origin), the
distribution's takopi entry points, and, unless skipped, whether each entry point loads and
yields an object with the right ``id``. The checks here turn that into a clear refusal:
the reference takopi slipping in, a plugin that does not parse on the chosen Python, ...
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.fetch import PLUGIN_GROUPS, EntryPointSpec, FetchedDist
from takopi.plugin_envs.self_install import TakopiSource

_REPORT = r"""
import importlib.util, json, os, sys
from importlib import metadata
out_stream, sys.stdout = sys.stdout, sys.stderr  # plugin imports may print
dist_name, load = sys.argv[1], sys.argv[2] == "1"
groups = sys.argv[3:]
out = {}
try:
    import takopi
    tdist = metadata.distribution("takopi")
    out["takopi"] = {
        "version": tdist.version,
        "module_version": getattr(takopi, "__version__", None),
        "file": os.path.realpath(takopi.__file__),
        "direct_url": tdist.read_text("direct_url.json"),
        "worker": importlib.util.find_spec("takopi.worker") is not None,
    }
except BaseException as exc:
    out["takopi"] = {"error": "%s: %s" % (type(exc).__name__, exc)}
eps = []
try:
    dist = metadata.distribution(dist_name)
    out["version"] = dist.version
    for ep in dist.entry_points:
        if ep.group not in groups:
            continue
        item = {"group": ep.group, "name": ep.name, "value": ep.value, "error": None}
        if load:
            try:
                obj = ep.load()
                oid = getattr(obj, "id", None)
                if oid != ep.name:
                    item["error"] = "plugin id mismatch: entry point %r loaded an object with id %r" % (ep.name, oid)
            except BaseException as exc:
                item["error"] = "%s: %s" % (type(exc).__name__, exc)
        eps.append(item)
except BaseException as exc:
    out["dist_error"] = "%s: %s" % (type(exc).__name__, exc)
out["entry_points"] = eps
out_stream.write(json.dumps(out))
"""


@dataclass(frozen=True, slots=True)
class EnvReport:
    """What the new environment says about itself."""

    entry_points: tuple[EntryPointSpec, ...]
    takopi_file: str


def _inspect(python: Path, dist: str, load: bool) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [str(python), "-I", "-c", _REPORT, dist, "1" if load else "0", *PLUGIN_GROUPS],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=python.parent.parent,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PluginEnvError(f"cannot run the new environment's Python: {exc}") from exc
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as exc:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PluginEnvError(f"the new environment's Python failed: {tail}") from exc
    return data


def _origin_ok(info: dict[str, Any], source: TakopiSource) -> bool:
    if source.editable_path is not None:
        return Path(info["file"]).is_relative_to(Path(source.editable_path).resolve())
    try:
        url = json.loads(info.get("direct_url") or "{}").get("url", "")
    except ValueError:
        return False
    return Path(unquote(urlparse(url).path)).name == Path(source.args[-1]).name


def verify(python: Path, fetched: FetchedDist, source: TakopiSource, *, load: bool) -> EnvReport:
    """Check the environment of ``python``; :class:`PluginEnvError` says what is wrong."""
    data = _inspect(python, fetched.name, load)
    info = data.get("takopi") or {}
    if "error" in info:
        raise PluginEnvError(f"takopi does not import in the new environment: {info['error']}")
    if (
        info.get("version") != source.version
        or not info.get("worker")
        or not _origin_ok(info, source)
    ):
        raise PluginEnvError(
            f"the new environment has takopi {info.get('version')} from {info.get('file')}, "
            f"not this takopi ({source.version}, {source.description}); refusing it"
        )
    if "dist_error" in data:
        raise PluginEnvError(f"{fetched.name} is not installed in the new environment")
    if data.get("version") != fetched.version:
        raise PluginEnvError(
            f"the new environment has {fetched.name} {data.get('version')}, "
            f"expected {fetched.version}"
        )
    eps = tuple(
        EntryPointSpec(str(e["group"]), str(e["name"]), str(e["value"]))
        for e in data.get("entry_points", [])
    )
    failures = [f"{e['name']}: {e['error']}" for e in data.get("entry_points", []) if e["error"]]
    if failures:
        raise PluginEnvError(
            f"{fetched.describe()} does not load under this Python:\n  "
            + "\n  ".join(failures)
            + "\n  (pick another interpreter with --python, or skip this check with "
            "--no-load-check)"
        )
    return EnvReport(eps, str(info["file"]))


__all__ = ["EnvReport", "verify"]
