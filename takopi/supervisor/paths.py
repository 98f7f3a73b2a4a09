"""Where the supervisor keeps its sockets (runtime dir) and durable state (state dir).

Runtime dir: ``$XDG_RUNTIME_DIR/takopi/<hash of the config path>`` when ``XDG_RUNTIME_DIR`` is
set and usable, else ``<config dir>/.takopi-run-<hash>``; always mode 0700 and owned by us.
State dir: ``<config dir>/state`` (the journal lives there).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SupervisorPaths:
    """All filesystem locations one supervisor instance uses."""

    config_path: Path
    runtime_dir: Path
    state_dir: Path

    @property
    def rpc_address(self) -> str:
        """The ZeroMQ ``ipc://`` endpoint workers connect to."""
        return f"ipc://{self.runtime_dir / 'rpc.sock'}"

    @property
    def control_socket(self) -> Path:
        """The owner-only unix socket `takopictl` talks to."""
        return self.runtime_dir / "control.sock"

    @property
    def journal_path(self) -> Path:
        """The delivery journal (append-only JSON lines, fsync'd)."""
        return self.state_dir / "journal.jsonl"

    @property
    def pid_file(self) -> Path:
        """The supervisor's pid (informational; the lockfile is the real guard)."""
        return self.runtime_dir / "supervisor.pid"


def config_hash(config_path: Path) -> str:
    """A short stable id for a config file (its absolute path hashed)."""
    resolved = str(Path(config_path).expanduser().resolve())
    return hashlib.sha256(resolved.encode()).hexdigest()[:12]


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (parents as needed) with mode 0700 and refuse one owned by someone else."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} is owned by uid {st.st_uid}, not by us")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _xdg_runtime_base() -> Path | None:
    value = os.environ.get("XDG_RUNTIME_DIR")
    if not value:
        return None
    base = Path(value)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        return None
    return base


def resolve_paths(config_path: Path, *, create: bool = True) -> SupervisorPaths:
    """Compute (and by default create) the runtime and state dirs for ``config_path``."""
    config_path = Path(config_path).expanduser().absolute()
    digest = config_hash(config_path)
    base = _xdg_runtime_base()
    # ipc paths are limited to ~107 bytes; fall back to the config dir only if that fits.
    runtime_dir = (
        base / "takopi" / digest
        if base is not None
        else config_path.parent / f".takopi-run-{digest}"
    )
    if len(str(runtime_dir / "control.sock")) > 100:
        runtime_dir = Path("/tmp") / f"takopi-{os.getuid()}" / digest
    state_dir = config_path.parent / "state"
    if create:
        if runtime_dir.parent.name == "takopi" or runtime_dir.parent.name.startswith("takopi-"):
            ensure_private_dir(runtime_dir.parent)
        ensure_private_dir(runtime_dir)
        ensure_private_dir(state_dir)
    return SupervisorPaths(config_path=config_path, runtime_dir=runtime_dir, state_dir=state_dir)


__all__ = ["SupervisorPaths", "config_hash", "ensure_private_dir", "resolve_paths"]
