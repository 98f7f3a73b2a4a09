"""Advisory single-instance lock next to the config (``takopi.lock``).

The lock file holds ``{"pid": <pid>, "token_fingerprint": <sha256(token)[:10]>}``. Another
instance with the same (or an unknown) token fingerprint whose pid is alive blocks startup; a
*different* token fingerprint (another bot) takes the lock over; a dead pid or a garbage file is
replaced. No fcntl/flock: the file is released (unlinked) on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from takopi.logging import get_logger

log = get_logger(__name__)


class LockError(Exception):
    """Another takopi instance holds the lock. ``str(exc)`` is ``already running``."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.path = path
        self.pid = pid
        self.hint = f"remove {_display(path)} if stale"
        super().__init__("already running")


def _display(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    if text == home or text.startswith(home + os.sep):
        return "~" + text[len(home) :]
    return text


def token_fingerprint(token: str) -> str:
    """``sha256(token)[:10]`` in hex: identifies a bot without storing its token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:10]


def lock_path_for(config_path: str | os.PathLike[str]) -> Path:
    """``takopi.toml`` → ``takopi.lock`` in the same directory."""
    return Path(config_path).expanduser().with_suffix(".lock")


@dataclass(slots=True)
class LockHandle:
    """A held lock; :meth:`release` removes the file if it is still ours."""

    path: Path
    pid: int
    fingerprint: str | None
    released: bool = False

    def release(self) -> None:
        """Unlink the lock file unless another instance has taken it over. Idempotent."""
        if self.released:
            return
        self.released = True
        current = _read_lock(self.path)
        if current is not None and current.get("pid") != self.pid:
            return  # taken over (different token): the file is no longer ours
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.debug("lock.released", path=str(self.path))

    def __enter__(self) -> LockHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The lock file's content; None if missing; ``{}`` if unreadable garbage."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int, lock_mtime: float | None) -> bool:
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # A pid reused after a reboot belongs to a process younger than the lock file.
        if lock_mtime is not None and proc.create_time() > lock_mtime + 1.0:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists but we may not inspect it
    return True


def _write_lock(path: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def acquire_lock(
    config_path: str | os.PathLike[str],
    token: str | None,
    *,
    pid: int | None = None,
) -> LockHandle:
    """Take the lock for ``config_path`` on behalf of ``pid`` (default: this process).

    Raises :class:`LockError` when a live instance with the same or an unknown token
    fingerprint holds it.
    """
    path = lock_path_for(config_path)
    own_pid = os.getpid() if pid is None else pid
    fingerprint = token_fingerprint(token) if token else None
    existing = _read_lock(path)
    if existing is not None:
        other_pid = existing.get("pid")
        other_fp = existing.get("token_fingerprint")
        try:
            mtime: float | None = path.stat().st_mtime
        except OSError:
            mtime = None
        if not isinstance(other_pid, int) or isinstance(other_pid, bool):
            log.warning("lock.garbage", path=str(path))
        elif fingerprint and isinstance(other_fp, str) and other_fp and other_fp != fingerprint:
            log.info("lock.takeover", path=str(path), pid=other_pid)
        elif _pid_alive(other_pid, mtime):
            raise LockError(path, other_pid)
        else:
            log.info("lock.stale", path=str(path), pid=other_pid)
    _write_lock(path, {"pid": own_pid, "token_fingerprint": fingerprint})
    log.debug("lock.acquired", path=str(path), pid=own_pid)
    return LockHandle(path=path, pid=own_pid, fingerprint=fingerprint)


__all__ = ["LockError", "LockHandle", "acquire_lock", "lock_path_for", "token_fingerprint"]
