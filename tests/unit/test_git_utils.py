"""takopi.utils.git against real repositories in temporary directories."""

from __future__ import annotations

from pathlib import Path

from takopi.utils.git import (
    current_branch,
    git_ok,
    git_stdout,
    is_worktree_top,
    resolve_default_base,
    resolve_main_worktree_root,
)
from tests.support.git_repos import git, make_repo


def test_git_stdout_and_ok(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert git_stdout(["rev-parse", "--is-inside-work-tree"], cwd=repo) == "true"
    assert git_ok(["rev-parse", "HEAD"], cwd=repo)
    assert not git_ok(["rev-parse", "--verify", "nope"], cwd=repo)
    assert git_stdout(["rev-parse", "--verify", "nope"], cwd=repo) is None


def test_outside_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_stdout(["rev-parse", "HEAD"], cwd=plain) is None
    assert current_branch(plain) is None
    assert resolve_main_worktree_root(plain) is None
    assert not is_worktree_top(plain)


def test_missing_cwd_is_not_a_crash(tmp_path: Path) -> None:
    assert git_stdout(["status"], cwd=tmp_path / "missing") is None
    assert not git_ok(["status"], cwd=tmp_path / "missing")


def test_current_branch_and_detached_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", branch="trunk")
    assert current_branch(repo) == "trunk"
    git(repo, "checkout", "-q", "--detach")
    assert current_branch(repo) is None


def test_main_worktree_root_from_subdir_and_linked_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    assert resolve_main_worktree_root(sub) == repo.resolve()
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    assert resolve_main_worktree_root(linked) == repo.resolve()
    assert is_worktree_top(linked)
    assert is_worktree_top(repo)
    assert not is_worktree_top(sub)


def test_default_base_prefers_origin_head(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream", branch="develop")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    git(clone, "checkout", "-q", "-b", "topic")
    # origin/HEAD -> develop, and a local develop exists (the clone's initial branch)
    assert resolve_default_base(clone) == "develop"
    git(clone, "branch", "-q", "-D", "develop")
    assert resolve_default_base(clone) == "origin/develop"


def test_default_base_falls_back_to_current_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", branch="work")
    assert resolve_default_base(repo) == "work"


def test_default_base_detached_prefers_master_then_main(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", branch="main")
    git(repo, "checkout", "-q", "--detach")
    assert resolve_default_base(repo) == "main"
    git(repo, "branch", "-q", "master")
    assert resolve_default_base(repo) == "master"


def test_default_base_none_when_nothing_fits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", branch="odd")
    git(repo, "checkout", "-q", "--detach")
    assert resolve_default_base(repo) is None
