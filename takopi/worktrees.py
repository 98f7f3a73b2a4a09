"""Where a run works: the project directory or a git worktree for ``@branch``.

Worktrees live at ``<worktrees_root>/<branch>`` (the branch may contain ``/``). They are created
on first use from the local branch, else ``origin/<branch>``, else a new branch off the project's
base; takopi never fetches and never removes worktrees.
"""

from __future__ import annotations

import threading
from pathlib import Path

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.utils.git import (
    current_branch,
    git_ok,
    git_run,
    has_local_branch,
    has_remote_branch,
    is_worktree_top,
    resolve_default_base,
)

logger = get_logger(__name__)

# Two runs asking for the same new branch at once must not race on ``git worktree add``.
_path_locks: dict[Path, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _path_locks_guard:
        return _path_locks.setdefault(path.resolve(strict=False), threading.Lock())


def resolve_run_cwd(context: RunContext | None, *, projects: ProjectsConfig) -> Path | None:
    """The directory a run with ``context`` works in.

    No project: None (the engine inherits takopi's cwd). Project without branch, or with the
    branch currently checked out in the project: the project path. Otherwise the branch's
    worktree, created if needed. Raises :class:`ConfigError` with a user-facing message.
    """
    if context is None or context.project is None:
        return None
    project = projects.resolve(context.project)
    if project is None:
        raise ConfigError(f"unknown project {context.project!r}")
    if not context.branch:
        return project.path
    return ensure_worktree(project, context.branch)


def worktree_path_for(project: ProjectConfig, branch: str) -> Path:
    """Validate ``branch`` and return its worktree path inside the project's worktrees root."""
    if not branch or not branch.strip():
        raise ConfigError("branch name cannot be empty")
    if branch != branch.strip() or any(ch.isspace() for ch in branch):
        raise ConfigError(f"invalid branch name {branch!r}: whitespace is not allowed")
    if branch.startswith("/"):
        raise ConfigError(f"invalid branch name {branch!r}: cannot start with '/'")
    if branch.startswith("-"):
        raise ConfigError(f"invalid branch name {branch!r}: cannot start with '-'")
    if ".." in branch.split("/"):
        raise ConfigError(f"invalid branch name {branch!r}: cannot contain '..'")
    if "\\" in branch or "\x00" in branch:
        raise ConfigError(f"invalid branch name {branch!r}")
    root = project.worktrees_root
    path = root / branch
    resolved_root = root.resolve(strict=False)
    resolved = path.resolve(strict=False)
    if resolved == resolved_root or not resolved.is_relative_to(resolved_root):
        raise ConfigError(
            f"invalid branch name {branch!r}: worktree path escapes {project.worktrees_root}"
        )
    return path


def _worktree_add(root: Path, args: list[str]) -> None:
    result = git_run(["worktree", "add", *args], cwd=root)
    if result is None:
        raise ConfigError("git is not available; cannot create a worktree")
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        logger.warning("worktree.add_failed", root=str(root), args=args, error=detail)
        raise ConfigError(f"git worktree add failed: {detail}")


def ensure_worktree(project: ProjectConfig, branch: str) -> Path:
    """Return the directory for ``branch`` of ``project``, creating its worktree if needed."""
    root = project.path
    if not root.is_dir():
        raise ConfigError(f"project path not found: {root}")
    if branch == current_branch(root):
        return root
    path = worktree_path_for(project, branch)
    with _lock_for(path):
        return _ensure_worktree_locked(project, branch, path)


def _ensure_worktree_locked(project: ProjectConfig, branch: str, path: Path) -> Path:
    root = project.path
    if path.exists():
        if not is_worktree_top(path):
            raise ConfigError(f"{path} exists but is not a git worktree")
        return path
    if not git_ok(["check-ref-format", f"refs/heads/{branch}"], cwd=root):
        raise ConfigError(f"invalid branch name {branch!r}")

    path.parent.mkdir(parents=True, exist_ok=True)
    if has_local_branch(root, branch):
        _worktree_add(root, [str(path), branch])
    elif has_remote_branch(root, branch):
        _worktree_add(root, ["-b", branch, str(path), f"origin/{branch}"])
    else:
        base = project.worktree_base or resolve_default_base(root)
        if not base:
            raise ConfigError("cannot determine base branch for new worktree")
        _worktree_add(root, ["-b", branch, str(path), base])
    logger.info("worktree.created", project=project.alias, branch=branch, path=str(path))
    return path


__all__ = ["ensure_worktree", "resolve_run_cwd", "worktree_path_for"]
