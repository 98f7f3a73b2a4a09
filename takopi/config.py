"""The config file: location, errors, atomic read/write and dotted-key helpers.

Kept free of pydantic (workers import it); validation lives in :mod:`takopi.settings`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tomli_w

HOME_CONFIG_PATH = Path.home() / ".takopi" / "takopi.toml"

KEY_SEGMENT_PATTERN = r"^[A-Za-z0-9_-]+$"
_KEY_SEGMENT_RE = re.compile(KEY_SEGMENT_PATTERN)


class ConfigError(Exception):
    """Invalid or missing configuration; the message is shown to the user as-is."""


CONFIG_PATH_ENV = "TAKOPI_CONFIG_PATH"
"""Environment variable naming the active config (set by the supervisor for its workers)."""


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` with ``~`` expanded; when None/empty, ``$TAKOPI_CONFIG_PATH`` if set, else
    :data:`HOME_CONFIG_PATH`."""
    if path is None or str(path) == "":
        from_env = os.environ.get(CONFIG_PATH_ENV, "").strip()
        return Path(from_env).expanduser() if from_env else HOME_CONFIG_PATH
    return Path(path).expanduser()


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse the TOML config at ``path``; :class:`ConfigError` if missing, not a file or bad."""
    cfg_path = Path(path).expanduser()
    if not cfg_path.exists():
        raise ConfigError(f"Missing config file {cfg_path}.")
    if not cfg_path.is_file():
        raise ConfigError(f"Config path {cfg_path} exists but is not a file.")
    try:
        raw = cfg_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Failed to read config file {cfg_path}: {exc}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Malformed TOML in {cfg_path}: {exc}") from exc


def _without_none(value: Any) -> Any:
    # TOML has no null: drop None values instead of failing the whole dump.
    if isinstance(value, Mapping):
        return {str(k): _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value if v is not None]
    return value


def dump_toml(config: Mapping[str, Any]) -> str:
    """Serialize ``config`` as TOML text (``None`` values are left out)."""
    try:
        return tomli_w.dumps(_without_none(config))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Cannot write config as TOML: {exc}") from exc


def write_config(config: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically write ``config`` to ``path``.

    The TOML goes to a temp file ``.<name>.*.tmp`` in the same directory (mode 0600: the
    config holds secrets), is fsync'd, then ``os.replace``d over the target.
    """
    cfg_path = Path(path).expanduser()
    text = dump_toml(config)
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{cfg_path.name}.", suffix=".tmp", dir=cfg_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, cfg_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def ensure_table(
    config: dict[str, Any],
    key: str,
    *,
    config_path: Path | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """``config[key]`` as a table, created empty if missing; ConfigError if not a table."""
    value = config.get(key)
    if value is None:
        table: dict[str, Any] = {}
        config[key] = table
        return table
    if not isinstance(value, dict):
        where = f" in {config_path}" if config_path is not None else ""
        raise ConfigError(f"Invalid `{label or key}`{where}; expected a table.")
    return value


# --- dotted keys (``takopi config get/set/unset``) --------------------------------------------


def split_key(key: str) -> list[str]:
    """Split ``a.b.c`` into segments; each must match ``^[A-Za-z0-9_-]+$``."""
    segments = key.split(".")
    for segment in segments:
        if not _KEY_SEGMENT_RE.match(segment):
            raise ConfigError(
                f"Invalid config key {key!r}; each segment must match {KEY_SEGMENT_PATTERN}."
            )
    return segments


def get_key(config: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` (a dict for a table); ``KeyError`` if absent."""
    node: Any = config
    for segment in split_key(key):
        if not isinstance(node, Mapping) or segment not in node:
            raise KeyError(key)
        node = node[segment]
    return node


def set_key(config: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` to ``value``, creating intermediate tables."""
    segments = split_key(key)
    node = config
    for depth, segment in enumerate(segments[:-1]):
        child = node.get(segment)
        if child is None:
            child = {}
            node[segment] = child
        elif not isinstance(child, dict):
            parent = ".".join(segments[: depth + 1])
            raise ConfigError(f"Cannot set {key!r}: {parent!r} is not a table.")
        node = child
    node[segments[-1]] = value


def unset_key(config: dict[str, Any], key: str) -> bool:
    """Remove dotted ``key`` and prune parents left empty; False if it was absent."""
    segments = split_key(key)
    path: list[dict[str, Any]] = [config]
    node: Any = config
    for segment in segments[:-1]:
        node = node.get(segment) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return False
        path.append(node)
    if segments[-1] not in path[-1]:
        return False
    del path[-1][segments[-1]]
    for depth in range(len(segments) - 1, 0, -1):
        if path[depth]:
            break
        del path[depth - 1][segments[depth - 1]]
    return True


def parse_value(raw: str) -> Any:
    """A CLI value as a TOML literal (``123``, ``true``, ``["a"]``); else the raw string."""
    if raw.strip() == "":
        return ""
    try:
        return tomllib.loads(f"__v__ = {raw}")["__v__"]
    except tomllib.TOMLDecodeError:
        return raw


def format_value(value: Any) -> str:
    """A value as a single-line TOML literal (tables become inline tables)."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_format_key(k)} = {format_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _format_key(key: str) -> str:
    return key if _KEY_SEGMENT_RE.match(key) else format_value(key)


def iter_leaves(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every non-table value with its dotted key, depth-first."""
    for key, value in config.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            yield from iter_leaves(value, dotted)
        else:
            yield dotted, value


def flatten_config(config: Mapping[str, Any]) -> list[str]:
    """``dot.path = <toml literal>`` lines sorted by key (``takopi config list``)."""
    return [
        f"{k} = {format_value(v)}" for k, v in sorted(iter_leaves(config), key=lambda kv: kv[0])
    ]


__all__ = [
    "CONFIG_PATH_ENV",
    "HOME_CONFIG_PATH",
    "KEY_SEGMENT_PATTERN",
    "ConfigError",
    "dump_toml",
    "ensure_table",
    "flatten_config",
    "format_value",
    "get_key",
    "iter_leaves",
    "parse_value",
    "read_config",
    "resolve_config_path",
    "set_key",
    "split_key",
    "unset_key",
    "write_config",
]
