"""Private runtime directory and ipc:// addresses for the RPC sockets."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_IPC_PATH = 107


def make_runtime_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and make it private: mode 0700, owned by us, not a symlink.

    Raises ``PermissionError`` when the directory belongs to another user or is a symlink.
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"runtime dir {p} is not a plain directory")
    if st.st_uid != os.getuid():
        raise PermissionError(f"runtime dir {p} is owned by uid {st.st_uid}, not by us")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(p, 0o700)
    return p.resolve()


def ipc_address(directory: str | os.PathLike[str], name: str) -> str:
    """``ipc://<directory>/<name>.sock``; raises ``ValueError`` if the path is too long."""
    if not name or "/" in name or "\0" in name:
        raise ValueError(f"invalid ipc endpoint name {name!r}")
    path = Path(directory).resolve() / f"{name}.sock"
    if len(os.fsencode(str(path))) > MAX_IPC_PATH:
        raise ValueError(
            f"ipc socket path {path} is longer than {MAX_IPC_PATH} bytes; use a shorter "
            "runtime directory"
        )
    return f"ipc://{path}"


def new_identity(kind: str, plugin_id: str) -> bytes:
    """A per-incarnation ZeroMQ routing identity, e.g. ``b"engine:codex:1f2e3d4c"``.

    Never reuse an identity for a restarted worker: ZeroMQ may keep routing to the dead pipe.
    """
    ident = f"{kind}:{plugin_id}:{secrets.token_hex(4)}".encode()
    return ident[:255]


__all__ = ["MAX_IPC_PATH", "ipc_address", "make_runtime_dir", "new_identity"]
