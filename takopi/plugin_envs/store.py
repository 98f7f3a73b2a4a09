"""Where managed plugin environments live on disk, and what each one records about itself.

Layout, next to the config file (``~/.takopi/`` by default)::

    plugin-envs/
      .lock                              flock'd by every command that changes something
      takopi-cron/                       one directory per distribution (canonical name)
        current -> 0.1.0-3fa2c1d0        the live environment (symlink, replaced atomically)
        0.1.0-3fa2c1d0/                  a venv; a new one per install/upgrade
          bin/python
          takopi-plugin-env.json         its manifest, written last: no manifest = unfinished

Config entries point at ``<env>/bin/python`` of a concrete environment, so an upgrade changes
the configured path (and a running supervisor restarts the affected workers on reload).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from takopi.plugin_envs.errors import PluginEnvError
from takopi.plugin_envs.fetch import EntryPointSpec

ENVS_DIRNAME = "plugin-envs"
MANIFEST_NAME = "takopi-plugin-env.json"
MANIFEST_FORMAT = 1


@dataclass(slots=True)
class Manifest:
    """What one managed environment holds and which config keys it wrote."""

    distribution: str
    key: str
    version: str
    requirement: str
    """The ``install`` argument (``upgrade`` reuses its name and extras, or its file)."""
    python: str
    """The base interpreter the venv was built from."""
    python_version: str
    requires_python: str | None
    ignore_requires_python: bool
    takopi_version: str
    takopi_source: str
    installer: str
    entry_points: list[EntryPointSpec]
    config_python: dict[str, str] = field(default_factory=dict)
    """``[plugins.<id>] python`` values written by takopi, by plugin id."""
    enabled_added: bool = False
    """True when takopi added the distribution to a non-empty ``plugins.enabled``."""
    created_at: str = ""
    env_dir: Path = Path()

    @property
    def venv_python(self) -> Path:
        """The interpreter workers of this plugin run under."""
        return self.env_dir / "bin" / "python"

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("env_dir")
        data["format"] = MANIFEST_FORMAT
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, env_dir: Path) -> Manifest:
        data: dict[str, Any] = json.loads(text)
        if data.pop("format", None) != MANIFEST_FORMAT:
            raise ValueError("unknown manifest format")
        data["entry_points"] = [EntryPointSpec(**ep) for ep in data.get("entry_points", [])]
        known = {f.name for f in fields(cls)} - {"env_dir"}
        return cls(**{k: v for k, v in data.items() if k in known}, env_dir=env_dir)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EnvStore:
    """The ``plugin-envs`` directory belonging to one config file."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.root = config_path.expanduser().absolute().parent / ENVS_DIRNAME

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (one changing command at a time); fails fast when busy."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise PluginEnvError(
                    f"another `takopi plugins` command is changing {self.root}; try again later"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def dist_dir(self, key: str) -> Path:
        return self.root / key

    def new_env_dir(self, key: str, version: str) -> Path:
        """A fresh, not yet existing directory for a new environment of ``key``."""
        parent = self.dist_dir(key)
        parent.mkdir(parents=True, exist_ok=True)
        safe_version = "".join(c if c.isalnum() or c in ".+_" else "_" for c in version)
        return parent / f"{safe_version}-{secrets.token_hex(4)}"

    def current(self, key: str) -> Manifest | None:
        """The live environment of ``key`` (None when not installed or unreadable)."""
        link = self.dist_dir(key) / "current"
        try:
            target = link.resolve(strict=True)
            return Manifest.from_json((target / MANIFEST_NAME).read_text(), target)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def installed(self) -> list[Manifest]:
        """Every live environment, by distribution key."""
        try:
            keys = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []
        return [m for m in (self.current(k) for k in keys) if m is not None]

    def broken(self) -> list[str]:
        """Distribution directories without a readable live environment."""
        try:
            dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError:
            return []
        return [d.name for d in dirs if self.current(d.name) is None and any(d.iterdir())]

    def write_manifest(self, manifest: Manifest) -> None:
        path = manifest.env_dir / MANIFEST_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, path)

    def activate(self, manifest: Manifest) -> None:
        """Point ``current`` at ``manifest``'s environment (atomic rename of a new symlink)."""
        parent = manifest.env_dir.parent
        tmp = parent / f".current-{secrets.token_hex(4)}"
        os.symlink(manifest.env_dir.name, tmp)
        os.replace(tmp, parent / "current")

    def prune(self, key: str) -> None:
        """Remove every environment of ``key`` except the live one (unfinished ones too)."""
        live = self.current(key)
        parent = self.dist_dir(key)
        try:
            entries = list(parent.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name == "current" or (live is not None and entry == live.env_dir):
                continue
            discard(entry)

    def discard_env(self, env_dir: Path) -> None:
        """Delete an environment that never went live (and its distribution directory when
        nothing else is left in it)."""
        discard(env_dir)
        with contextlib.suppress(OSError):
            env_dir.parent.rmdir()  # only succeeds when empty

    def remove(self, key: str) -> None:
        """Delete every environment of ``key``."""
        discard(self.dist_dir(key))


def discard(path: Path) -> None:
    """Delete a file, symlink or directory tree; missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["ENVS_DIRNAME", "MANIFEST_NAME", "EnvStore", "Manifest", "discard", "now_text"]
