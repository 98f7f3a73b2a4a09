"""Plugin discovery through entry points.

Listing reads distribution metadata only (``entry_points.txt``) and never imports plugin code,
so a broken third-party plugin cannot break ``takopi --help``. Plugins are imported lazily by
:func:`load_entrypoint`, which caches the result and records failures as
:class:`PluginLoadError`. Discovery can also run against another interpreter (a plugin living in
its own venv, possibly another Python version) with :func:`list_entrypoints_for_python`.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import subprocess
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from takopi.config import ConfigError
from takopi.ids import ID_PATTERN, is_valid_id
from takopi.logging import get_logger

ENGINE_GROUP = "takopi.engine_backends"
TRANSPORT_GROUP = "takopi.transport_backends"
COMMAND_GROUP = "takopi.command_backends"

CORE_DISTRIBUTION = "takopi"
"""takopi's own distribution: its built-in plugins are never filtered out by an allowlist."""

_DIST_SEP_RE = re.compile(r"[-_.]+")
_VALUE_RE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]*)\s*)?((?P<extras>\[.*\])\s*)?$")
"""An entry point's ``module:attr [extras]`` value (as :mod:`importlib.metadata` reads it)."""

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PluginEntryPoint:
    """One entry point as declared in a distribution's metadata (nothing imported)."""

    group: str
    name: str
    value: str
    distribution: str | None
    python: str | None = None
    """The interpreter it was discovered for; None means this process."""


@dataclass(frozen=True, slots=True)
class PluginLoadError:
    """A plugin that could not be listed or loaded, with the reason."""

    group: str
    name: str
    value: str
    distribution: str | None
    error: str


class PluginNotFoundError(LookupError):
    """No (allowed, valid) entry point with that name in the group."""

    def __init__(self, group: str, name: str, available: Iterable[str] = ()) -> None:
        self.group = group
        self.name = name
        self.available = tuple(available)
        shown = ", ".join(self.available) or "none"
        super().__init__(f"{group} plugin {name!r} not found. Available: {shown}")


class PluginLoadFailed(Exception):
    """Importing or validating a plugin failed; ``load_error`` carries the details."""

    def __init__(self, load_error: PluginLoadError) -> None:
        self.load_error = load_error
        super().__init__(
            f"failed to load {load_error.group} plugin {load_error.name!r} "
            f"({load_error.distribution or 'unknown distribution'}): {load_error.error}"
        )


class PluginDiscoveryError(ConfigError):
    """Listing the entry points of another interpreter failed."""


_lock = threading.RLock()
_errors: dict[tuple[str, str, str | None, str], PluginLoadError] = {}
_loaded: dict[tuple[str, str, str | None], Any] = {}
_failed: dict[tuple[str, str, str | None], PluginLoadError] = {}
_known: dict[tuple[str, str], PluginEntryPoint] = {}


def canonicalize_name(name: str) -> str:
    """Canonical distribution name: runs of ``-``, ``_``, ``.`` become ``-``, lower-cased."""
    return _DIST_SEP_RE.sub("-", name).lower()


def normalize_allowlist(allowlist: Iterable[str] | None) -> frozenset[str] | None:
    """Canonicalize an allowlist of distribution names; empty or None means "allow all"."""
    if allowlist is None:
        return None
    names = frozenset(canonicalize_name(n) for n in allowlist if isinstance(n, str) and n.strip())
    return names or None


def is_allowed(distribution: str | None, allowlist: Iterable[str] | None) -> bool:
    """Whether a plugin from ``distribution`` passes ``allowlist`` (takopi's own always does)."""
    allowed = normalize_allowlist(allowlist)
    if allowed is None:
        return True
    if distribution is None:
        return False
    dist = canonicalize_name(distribution)
    return dist == CORE_DISTRIBUTION or dist in allowed


def _record(error: PluginLoadError) -> None:
    key = (error.group, error.name, error.distribution, error.error)
    with _lock:
        if key not in _errors:
            _errors[key] = error
            log.warning(
                "plugins.error",
                group=error.group,
                name=error.name,
                distribution=error.distribution,
                error=error.error,
            )


def get_load_errors() -> list[PluginLoadError]:
    """Every listing/loading problem recorded so far in this process, in order seen."""
    with _lock:
        return list(_errors.values())


def clear_load_errors() -> None:
    """Forget recorded errors and cached loads (tests, ``takopi plugins --load``)."""
    with _lock:
        _errors.clear()
        _loaded.clear()
        _failed.clear()


def remember_entrypoint(ep: PluginEntryPoint) -> None:
    """Take ``ep`` as what this interpreter declares for ``(ep.group, ep.name)``, so that
    :func:`find_entrypoint` and :func:`load_entrypoint` need not read every distribution's
    metadata for it (a worker is told its plugin's entry point by the supervisor, which listed
    it in the same interpreter). It is still validated (allowlist, id, reserved ids)."""
    with _lock:
        _known[(ep.group, ep.name)] = ep


def _raw_entrypoints(group: str) -> list[PluginEntryPoint]:
    """Entry points of ``group`` in this interpreter, first distribution per name wins."""
    from importlib import metadata  # ~1.5 MiB of imports a worker told its entry point skips

    seen: set[str] = set()
    found: list[PluginEntryPoint] = []
    for dist in metadata.distributions():
        try:
            # cheap pre-check: most distributions declare no takopi entry points at all
            text = dist.read_text("entry_points.txt")
        except Exception:
            continue
        if not text or group not in text:
            continue
        try:
            dist_name = dist.metadata["Name"]
        except Exception:  # corrupt METADATA: skip the distribution, not the whole listing
            continue
        if not dist_name:
            continue
        canonical = canonicalize_name(dist_name)
        if canonical in seen:
            continue  # the same distribution found twice on sys.path
        seen.add(canonical)
        try:
            eps = list(dist.entry_points)
        except Exception:
            continue
        for ep in eps:
            if ep.group == group:
                found.append(PluginEntryPoint(group, ep.name, ep.value, dist_name))
    return found


def _validate(
    raw: Iterable[PluginEntryPoint],
    *,
    allowlist: Iterable[str] | None,
    reserved_ids: Collection[str] | None,
) -> list[PluginEntryPoint]:
    """Apply allowlist, id pattern, reserved ids and duplicate rejection; sorted by name."""
    allowed = normalize_allowlist(allowlist)
    reserved = {r.lower() for r in reserved_ids} if reserved_ids else set()
    by_name: dict[str, list[PluginEntryPoint]] = {}
    for ep in raw:
        if not is_allowed(ep.distribution, allowed):
            continue
        if not is_valid_id(ep.name):
            _record(_error_for(ep, f"invalid plugin id {ep.name!r}; must match {ID_PATTERN}"))
            continue
        if ep.name in reserved:
            _record(_error_for(ep, f"reserved plugin id {ep.name!r}"))
            continue
        by_name.setdefault(ep.name, []).append(ep)
    result: list[PluginEntryPoint] = []
    for name in sorted(by_name):
        eps = by_name[name]
        if len(eps) > 1:
            dists = ", ".join(sorted(ep.distribution or "unknown" for ep in eps))
            for ep in eps:
                _record(_error_for(ep, f"duplicate plugin id {name!r} from {dists}"))
            continue
        result.append(eps[0])
    return result


def _error_for(ep: PluginEntryPoint, error: str) -> PluginLoadError:
    return PluginLoadError(ep.group, ep.name, ep.value, ep.distribution, error)


def list_entrypoints(
    group: str,
    *,
    allowlist: Iterable[str] | None = None,
    reserved_ids: Collection[str] | None = None,
) -> list[PluginEntryPoint]:
    """Valid, allowed entry points of ``group`` sorted by name, without importing anything.

    Invalid ids, reserved ids and ids declared by several distributions are left out and
    recorded (see :func:`get_load_errors`).
    """
    return _validate(_raw_entrypoints(group), allowlist=allowlist, reserved_ids=reserved_ids)


def list_ids(
    group: str,
    *,
    allowlist: Iterable[str] | None = None,
    reserved_ids: Collection[str] | None = None,
) -> list[str]:
    """Plugin ids (entry-point names) of ``group``, sorted, without importing plugin code."""
    return [
        ep.name for ep in list_entrypoints(group, allowlist=allowlist, reserved_ids=reserved_ids)
    ]


def find_entrypoint(
    group: str,
    name: str,
    *,
    allowlist: Iterable[str] | None = None,
    reserved_ids: Collection[str] | None = None,
) -> PluginEntryPoint:
    """The entry point ``name`` of ``group``; :class:`PluginNotFoundError` if absent."""
    with _lock:
        known = _known.get((group, name))
    if known is not None:
        valid = _validate([known], allowlist=allowlist, reserved_ids=reserved_ids)
        if valid:
            return valid[0]
    eps = list_entrypoints(group, allowlist=allowlist, reserved_ids=reserved_ids)
    for ep in eps:
        if ep.name == name:
            return ep
    raise PluginNotFoundError(group, name, [ep.name for ep in eps])


def load_entrypoint(
    group: str,
    name: str,
    *,
    allowlist: Iterable[str] | None = None,
    reserved_ids: Collection[str] | None = None,
    validator: Callable[[Any], str | None] | None = None,
) -> Any:
    """Import and return the object behind entry point ``name`` of ``group`` (cached).

    The object's ``id`` must equal ``name``; ``validator`` may return an error string for a
    wrong object type. Failures are recorded and raised as :class:`PluginLoadFailed`; a plugin
    that is not listed raises :class:`PluginNotFoundError`.
    """
    ep = find_entrypoint(group, name, allowlist=allowlist, reserved_ids=reserved_ids)
    key = (group, name, ep.distribution)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key in _failed:
            raise PluginLoadFailed(_failed[key])
    try:
        obj = _load_value(ep.value)
    except BaseException as exc:  # plugin import code may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _fail(key, _error_for(ep, f"{type(exc).__name__}: {exc}"))
    problem = validator(obj) if validator is not None else None
    if problem is None:
        obj_id = getattr(obj, "id", None)
        if obj_id != name:
            problem = (
                f"plugin id mismatch: entry point {name!r} loaded an object with id {obj_id!r}"
            )
    if problem is not None:
        return _fail(key, _error_for(ep, problem))
    with _lock:
        _loaded[key] = obj
    return obj


def _load_value(value: str) -> Any:
    """Import the object an entry point's value names (``module`` or ``module:attr.attr``)."""
    match = _VALUE_RE.match(value)
    if match is None:
        raise ValueError(f"malformed entry point value {value!r}")
    module = importlib.import_module(match.group("module"))
    attrs = [a for a in (match.group("attr") or "").split(".") if a]
    return functools.reduce(getattr, attrs, module)


def _fail(key: tuple[str, str, str | None], error: PluginLoadError) -> Any:
    with _lock:
        _failed[key] = error
    _record(error)
    raise PluginLoadFailed(error)


_FOREIGN_SCRIPT = r"""
import json, re, sys
from importlib import metadata
group = sys.argv[1]
seen = set()
out = []
for dist in metadata.distributions():
    try:
        name = dist.metadata["Name"]
    except Exception:
        continue
    if not name:
        continue
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    seen.add(key)
    try:
        eps = list(dist.entry_points)
    except Exception:
        continue
    for ep in eps:
        if ep.group == group:
            out.append({"name": ep.name, "value": ep.value, "distribution": name})
sys.stdout.write(json.dumps(out))
"""


def list_entrypoints_for_python(
    python: str,
    group: str,
    *,
    allowlist: Iterable[str] | None = None,
    reserved_ids: Collection[str] | None = None,
    timeout: float = 30.0,
) -> list[PluginEntryPoint]:
    """Like :func:`list_entrypoints`, but for the interpreter ``python`` (another venv).

    Runs ``python -I -c <script>`` that reads ``importlib.metadata`` (metadata only, no plugin
    import) and validates the result here. Raises :class:`PluginDiscoveryError` when the
    interpreter cannot be run or answers garbage.
    """
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _FOREIGN_SCRIPT, group],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PluginDiscoveryError(f"cannot run plugin interpreter {python}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise PluginDiscoveryError(
            f"plugin interpreter {python} failed (rc={proc.returncode}): {tail[0]}"
        )
    try:
        rows = json.loads(proc.stdout)
        raw = [
            PluginEntryPoint(group, str(r["name"]), str(r["value"]), r.get("distribution"), python)
            for r in rows
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise PluginDiscoveryError(
            f"plugin interpreter {python} returned unreadable entry points: {exc}"
        ) from exc
    return _validate(raw, allowlist=allowlist, reserved_ids=reserved_ids)


__all__ = [
    "COMMAND_GROUP",
    "CORE_DISTRIBUTION",
    "ENGINE_GROUP",
    "TRANSPORT_GROUP",
    "PluginDiscoveryError",
    "PluginEntryPoint",
    "PluginLoadError",
    "PluginLoadFailed",
    "PluginNotFoundError",
    "canonicalize_name",
    "clear_load_errors",
    "find_entrypoint",
    "get_load_errors",
    "is_allowed",
    "list_entrypoints",
    "list_entrypoints_for_python",
    "list_ids",
    "load_entrypoint",
    "normalize_allowlist",
    "remember_entrypoint",
]
