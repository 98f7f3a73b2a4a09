"""File-transfer helpers (path safety, deny globs, zips, safe writes).

``/file`` and uploads (:mod:`takopi.telegram.file_transfer`, :mod:`takopi.telegram.uploads`)
use them, and so do other transports (slack, matrix), which import them from here: keep the
names and signatures.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from .commands import split_command_args


class ZipTooLargeError(Exception):
    """The zip of a directory would exceed the allowed size."""


class PathEscapeError(PermissionError):
    """A write would land outside the root it is confined to."""


def format_bytes(size: int) -> str:
    """``0 b``, ``1.5 kb``, ``20 kb``, ``3.4 mb``, ``1 gb`` (no decimals when whole)."""
    value = float(max(0, size))
    for unit in ("b", "kb", "mb", "gb"):
        if value < 1024 or unit == "gb":
            if unit == "b" or value == int(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} gb"  # pragma: no cover - loop always returns


def file_usage() -> str:
    """Usage text of ``/file``."""
    return "usage: `/file put <path>` or `/file get <path>`"


def normalize_relative_path(value: str) -> Path | None:
    """A safe relative path: no ``~``, not absolute, no ``..``, no ``.git`` part; ``.`` parts
    dropped. None when unsafe or empty."""
    raw = value.strip().replace("\\", "/")
    if not raw or raw.startswith("~"):
        return None
    path = PurePosixPath(raw)
    if path.is_absolute():
        return None
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or any(p == ".git" for p in parts):
        return None
    return Path(*parts)


def resolve_path_within_root(root: Path, rel: PurePosixPath | str) -> Path | None:
    """``root / rel`` resolved (symlinks followed); None when it escapes ``root``."""
    base = root.resolve()
    target = (base / str(rel)).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        return None
    return target


def deny_reason(rel: PurePosixPath | str, deny_globs: Iterable[str]) -> str | None:
    """The deny rule matching ``rel`` (``.git`` anywhere ⇒ ``.git/**``), or None."""
    path = PurePosixPath(str(rel))
    if ".git" in path.parts:
        return ".git/**"
    for pattern in deny_globs:
        if path.match(pattern):
            return pattern
        if (
            pattern.endswith("/**")
            and path.parts[: len(PurePosixPath(pattern[:-3]).parts)]
            == PurePosixPath(pattern[:-3]).parts
        ):
            return pattern
    return None


def default_upload_name(filename: str | None, fallback: str | None) -> str:
    """A safe file name for an upload: the name part of ``filename``, else of ``fallback``
    (e.g. the Telegram file path), else ``upload.bin``."""
    for candidate in (filename, fallback):
        name = Path(candidate or "").name.strip()
        if name and name not in {".", ".."}:
            return name
    return "upload.bin"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file ``.takopi-upload-*`` in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".takopi-upload-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; return what was created, deepest last."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
    except BaseException:
        _remove_dirs(created)
        raise
    return created


def _remove_dirs(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_upload(path: Path, data: bytes, *, overwrite: bool, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` via a temp file ``.takopi-upload-*`` and a rename.

    Missing parent directories are created. Without ``overwrite`` an existing ``path`` is
    never replaced (the temp file is hard-linked into place, which fails atomically when the
    name exists) and :class:`FileExistsError` is raised. With ``root``, the parent directory
    must resolve inside it, before and after the missing directories are created (a symlink
    swapped in meanwhile is caught too), else :class:`PathEscapeError`. On any failure nothing is left behind: no temp file, no
    directory this call created. The new file gets the usual mode (``0o666`` minus the umask)
    or, when it replaces a file, that file's mode.
    """

    def check_root() -> None:
        if root is not None and not path.parent.resolve().is_relative_to(root.resolve()):
            raise PathEscapeError(errno.EACCES, "upload directory escapes the root")

    check_root()
    created = _make_dirs(path.parent)
    tmp = path.parent / f".takopi-upload-{secrets.token_hex(8)}"
    try:
        check_root()  # again: a symlink may have been swapped in meanwhile
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        try:
            if overwrite:
                try:
                    os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
                except FileNotFoundError:
                    pass
                os.replace(tmp, path)
            else:
                _place_without_overwrite(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    except BaseException:
        _remove_dirs(created)
        raise
    _fsync_dir(path.parent)


def _place_without_overwrite(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # no hard links here (some network/FAT file systems): check, then rename
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def zip_directory(
    root: Path, rel: PurePosixPath | str, deny_globs: Sequence[str], *, max_bytes: int | None = None
) -> bytes:
    """Zip ``root/rel`` (deflated; symlinks and denied paths skipped)."""
    directory = root / str(rel)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for current, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if not (Path(current) / d).is_symlink()]
            for name in sorted(files):
                full = Path(current) / name
                if full.is_symlink():
                    continue
                rel_path = PurePosixPath(full.relative_to(root).as_posix())
                if deny_reason(rel_path, deny_globs) is not None:
                    continue
                zf.write(full, arcname=rel_path.as_posix())
                if max_bytes is not None and buffer.tell() > max_bytes:
                    raise ZipTooLargeError(str(rel))
    data = buffer.getvalue()
    if max_bytes is not None and len(data) > max_bytes:
        raise ZipTooLargeError(str(rel))
    return data


def parse_file_command(args_text: str) -> tuple[str | None, str, str | None]:
    """``/file <put|get> rest`` → ``(command, rest, error)``; an unknown or missing
    subcommand gives ``(None, rest, file_usage())``."""
    head, _, rest = args_text.strip().partition(" ")
    command = head.lower()
    rest = rest.strip()
    if command not in {"put", "get"}:
        return None, rest, file_usage()
    return command, rest, None


def parse_file_prompt(
    text: str, *, allow_empty: bool = False
) -> tuple[str | None, bool, str | None]:
    """``(path, force, error)`` from a ``put``/``get`` argument string (``--force`` allowed)."""
    force = False
    rest: list[str] = []
    for arg in split_command_args(text):
        if arg == "--force":
            force = True
        elif arg.startswith("--"):
            return None, False, f"unknown flag: {arg}"
        else:
            rest.append(arg)
    path = " ".join(rest) or None
    if path is None and not allow_empty:
        return None, force, "missing path"
    return path, force, None


__all__ = [
    "PathEscapeError",
    "ZipTooLargeError",
    "default_upload_name",
    "deny_reason",
    "file_usage",
    "format_bytes",
    "normalize_relative_path",
    "parse_file_command",
    "parse_file_prompt",
    "resolve_path_within_root",
    "split_command_args",
    "write_bytes_atomic",
    "write_upload",
    "zip_directory",
]
