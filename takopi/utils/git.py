"""Small, failure-tolerant wrappers around the ``git`` CLI.

Every helper returns None/False instead of raising when git is missing, the directory is not a
repository, or the command fails; callers turn that into a user-facing error where it matters.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from takopi.logging import get_logger

logger = get_logger(__name__)

_GIT_TIMEOUT_S = 60.0


def git_run(
    args: Sequence[str], *, cwd: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str] | None:
    """Run ``git <args>`` in ``cwd``; None when git cannot be started at all."""
    argv = ["git", *args]
    try:
        return subprocess.run(
            argv,
            cwd=os.fspath(cwd),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=_GIT_TIMEOUT_S,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.warning("git.run_failed", argv=argv, cwd=os.fspath(cwd), error=str(exc))
        return None


def git_stdout(args: Sequence[str], *, cwd: str | os.PathLike[str]) -> str | None:
    """Stripped stdout of a successful ``git <args>``; None on failure or empty output."""
    result = git_run(args, cwd=cwd)
    if result is None or result.returncode != 0:
        return None
    out = result.stdout.strip()
    return out or None


def git_ok(args: Sequence[str], *, cwd: str | os.PathLike[str]) -> bool:
    """True when ``git <args>`` exits 0."""
    result = git_run(args, cwd=cwd)
    return result is not None and result.returncode == 0


def current_branch(cwd: str | os.PathLike[str]) -> str | None:
    """The checked-out branch (``git branch --show-current``); None when detached or no repo."""
    return git_stdout(["branch", "--show-current"], cwd=cwd)


def has_local_branch(root: str | os.PathLike[str], branch: str) -> bool:
    """``refs/heads/<branch>`` exists."""
    return git_ok(["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=root)


def has_remote_branch(root: str | os.PathLike[str], branch: str, remote: str = "origin") -> bool:
    """``refs/remotes/<remote>/<branch>`` exists."""
    return git_ok(["show-ref", "--verify", "--quiet", f"refs/remotes/{remote}/{branch}"], cwd=root)


def git_toplevel(cwd: str | os.PathLike[str]) -> Path | None:
    """The top of the working tree containing ``cwd``."""
    out = git_stdout(["rev-parse", "--show-toplevel"], cwd=cwd)
    return Path(out) if out else None


def is_worktree_top(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is the top directory of a git working tree (main or linked)."""
    target = Path(path)
    if not target.is_dir():
        return False
    top = git_toplevel(target)
    if top is None:
        return False
    return top.resolve() == target.resolve()


def resolve_main_worktree_root(cwd: str | os.PathLike[str]) -> Path | None:
    """The main working tree of the repository containing ``cwd``.

    From a linked worktree this is the repository the worktree was created from. None outside a
    repository and for bare repositories.
    """
    common = git_stdout(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=cwd)
    if common is None:
        return None
    common_dir = Path(common)
    if common_dir.name == ".git":
        return common_dir.parent
    if git_stdout(["rev-parse", "--is-bare-repository"], cwd=cwd) == "true":
        return None
    return git_toplevel(cwd)


def resolve_default_base(root: str | os.PathLike[str]) -> str | None:
    """The branch new worktrees start from when the project sets no ``worktree_base``.

    ``origin/HEAD``'s branch, else the current branch, else ``master``, else ``main``.
    ``origin/HEAD`` resolves to the local branch of the same name when it exists, otherwise to
    the remote-tracking ref (``origin/<name>``) so that ``git worktree add`` can use it.
    """
    origin_head = git_stdout(["symbolic-ref", "-q", "refs/remotes/origin/HEAD"], cwd=root)
    if origin_head:
        name = origin_head.removeprefix("refs/remotes/origin/")
        if name and name != origin_head:
            return name if has_local_branch(root, name) else f"origin/{name}"
    branch = current_branch(root)
    if branch:
        return branch
    for candidate in ("master", "main"):
        if has_local_branch(root, candidate):
            return candidate
    return None


__all__ = [
    "current_branch",
    "git_ok",
    "git_run",
    "git_stdout",
    "git_toplevel",
    "has_local_branch",
    "has_remote_branch",
    "is_worktree_top",
    "resolve_default_base",
    "resolve_main_worktree_root",
]
