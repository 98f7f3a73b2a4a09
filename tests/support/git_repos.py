"""Real git repositories for tests: :func:`git` runs a git command, :func:`make_repo` builds a
repository with one commit. Commits made this way carry a fixed test identity, so no git
configuration is needed on the machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "takopi tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "takopi tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    """``git <args>`` in ``cwd``; its stripped stdout (raises when git fails)."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
    )
    return result.stdout.strip()


def make_repo(path: Path, branch: str = "main", *, readme: str = "README") -> Path:
    """A new repository at ``path`` on ``branch``, with one committed file ``readme``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    (path / readme).write_text("hello\n")
    git(path, "add", readme)
    git(path, "commit", "-q", "-m", "init")
    return path


__all__ = ["GIT_IDENTITY", "git", "make_repo"]
