"""The run's base directory (the cwd an engine runs in) and path shortening for display.

The base directory lives in a contextvar so that everything running inside one run (the
subprocess spawn, tool-title rendering) sees the same project/worktree without threading it
through every call.
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from pathlib import Path

_run_base_dir: ContextVar[Path | None] = ContextVar("takopi_run_base_dir", default=None)


def set_run_base_dir(path: str | os.PathLike[str] | None) -> Token[Path | None]:
    """Set the base directory for the current run; returns a token for :func:`reset_run_base_dir`.

    ``None`` clears it (engines then inherit the process cwd).
    """
    value = Path(path) if path is not None else None
    return _run_base_dir.set(value)


def reset_run_base_dir(token: Token[Path | None]) -> None:
    """Restore the base directory that was in effect before the matching ``set_run_base_dir``."""
    _run_base_dir.reset(token)


def get_run_base_dir() -> Path | None:
    """The current run's base directory, or ``None`` when unset."""
    return _run_base_dir.get()


def _base_text(base: str | os.PathLike[str] | None) -> str | None:
    if base is None:
        base = get_run_base_dir()
    if base is None:
        return None
    text = os.fspath(base)
    if not text:
        return None
    # A trailing separator would make every prefix check fail; "/" stays "/".
    stripped = text.rstrip("/\\")
    return stripped or text


def relativize_path(
    path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
) -> str:
    """``path`` relative to ``base`` (default: the run base dir) when it lies inside it.

    Only whole path components match: ``/repo`` shortens ``/repo/src/a.py`` to ``src/a.py``
    but leaves the sibling ``/repo2/a.py`` alone. ``path == base`` becomes ``.``.
    """
    text = os.fspath(path)
    root = _base_text(base)
    if not root or not text:
        return text
    if text == root:
        return "."
    for sep in ("/", "\\"):
        prefix = root if root.endswith(sep) else root + sep
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            return rest or "."
    return text


def relativize_command(cmd: str, base: str | os.PathLike[str] | None = None) -> str:
    """Drop ``<base>/`` prefixes from paths inside a shell command, for display.

    With base ``/repo``, ``cat /repo/src/a.py`` becomes ``cat src/a.py``. Only occurrences that
    start a path and are followed by a separator match, so the sibling ``/repo2/x`` and a
    longer path that merely ends in ``/repo`` are left alone.
    """
    root = _base_text(base)
    if not root or not cmd or root in {"/", "\\"}:
        return cmd
    out: list[str] = []
    i = 0
    n = len(root)
    while True:
        j = cmd.find(root, i)
        if j < 0:
            out.append(cmd[i:])
            break
        before = cmd[j - 1] if j > 0 else ""
        after = cmd[j + n] if j + n < len(cmd) else ""
        starts_path = before == "" or not (before.isalnum() or before in "_-./\\~")
        if starts_path and after in ("/", "\\"):
            out.append(cmd[i:j])
            i = j + n + 1
        else:
            out.append(cmd[i : j + n])
            i = j + n
    return "".join(out)


__all__ = [
    "get_run_base_dir",
    "relativize_command",
    "relativize_path",
    "reset_run_base_dir",
    "set_run_base_dir",
]
