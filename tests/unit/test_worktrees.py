"""resolve_run_cwd / worktree creation against real git repositories (behavior.md §1.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.worktrees import ensure_worktree, resolve_run_cwd, worktree_path_for
from tests.support.git_repos import git, make_repo


def projects_for(project: ProjectConfig) -> ProjectsConfig:
    return ProjectsConfig(projects={project.alias.lower(): project})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def project(repo: Path) -> ProjectConfig:
    return ProjectConfig(alias="Repo", path=repo)


def test_no_project_means_inherited_cwd(project: ProjectConfig) -> None:
    projects = projects_for(project)
    assert resolve_run_cwd(None, projects=projects) is None
    assert resolve_run_cwd(RunContext(), projects=projects) is None
    assert resolve_run_cwd(RunContext(branch="x"), projects=projects) is None


def test_project_without_branch_is_the_project_path(project: ProjectConfig, repo: Path) -> None:
    assert resolve_run_cwd(RunContext(project="repo"), projects=projects_for(project)) == repo


def test_unknown_project(project: ProjectConfig) -> None:
    with pytest.raises(ConfigError, match="unknown project 'nope'"):
        resolve_run_cwd(RunContext(project="nope"), projects=projects_for(project))


def test_current_branch_runs_in_the_project_root(project: ProjectConfig, repo: Path) -> None:
    ctx = RunContext(project="repo", branch="main")
    assert resolve_run_cwd(ctx, projects=projects_for(project)) == repo
    assert not (repo / ".worktrees").exists()


def test_new_branch_from_the_default_base(project: ProjectConfig, repo: Path) -> None:
    ctx = RunContext(project="repo", branch="feat/new")
    path = resolve_run_cwd(ctx, projects=projects_for(project))
    assert path == repo / ".worktrees" / "feat" / "new"
    assert git(path, "branch", "--show-current") == "feat/new"
    assert git(path, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")
    # second call reuses the existing worktree
    assert resolve_run_cwd(ctx, projects=projects_for(project)) == path


def test_existing_local_branch_is_checked_out(project: ProjectConfig, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "local")
    (repo / "local.txt").write_text("x")
    git(repo, "add", "local.txt")
    git(repo, "commit", "-q", "-m", "local")
    local_head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    path = ensure_worktree(project, "local")
    assert git(path, "branch", "--show-current") == "local"
    assert git(path, "rev-parse", "HEAD") == local_head


def test_remote_branch_becomes_a_local_branch(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    git(upstream, "checkout", "-q", "-b", "remote-only")
    (upstream / "r.txt").write_text("r")
    git(upstream, "add", "r.txt")
    git(upstream, "commit", "-q", "-m", "remote")
    remote_head = git(upstream, "rev-parse", "HEAD")
    git(upstream, "checkout", "-q", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    project = ProjectConfig(alias="clone", path=clone, worktrees_dir=tmp_path / "wt")
    path = ensure_worktree(project, "remote-only")
    assert path == tmp_path / "wt" / "remote-only"
    assert git(path, "branch", "--show-current") == "remote-only"
    assert git(path, "rev-parse", "HEAD") == remote_head


def test_worktree_base_setting_is_used(tmp_path: Path, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "base")
    (repo / "b.txt").write_text("b")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-q", "-m", "base")
    base_head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    project = ProjectConfig(alias="repo", path=repo, worktree_base="base")
    path = ensure_worktree(project, "child")
    assert git(path, "rev-parse", "HEAD") == base_head


def test_existing_directory_that_is_not_a_worktree(project: ProjectConfig, repo: Path) -> None:
    stray = repo / ".worktrees" / "stray"
    stray.mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        ensure_worktree(project, "stray")
    assert str(info.value) == f"{stray} exists but is not a git worktree"


@pytest.mark.parametrize("branch", ["..", "../escape", "feat/../../x", "a/.."])
def test_dotdot_branches_are_rejected(project: ProjectConfig, branch: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot contain '\.\.'"):
        ensure_worktree(project, branch)


@pytest.mark.parametrize(
    ("branch", "fragment"),
    [
        ("/abs", "cannot start with '/'"),
        ("-rf", "cannot start with '-'"),
        ("", "cannot be empty"),
        ("a b", "whitespace"),
    ],
)
def test_unsafe_branch_names(project: ProjectConfig, branch: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        worktree_path_for(project, branch)


def test_symlink_escape_is_rejected(tmp_path: Path, project: ProjectConfig, repo: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".worktrees").mkdir()
    (repo / ".worktrees" / "link").symlink_to(outside)
    with pytest.raises(ConfigError, match="escapes"):
        ensure_worktree(project, "link/inner")
    assert list(outside.iterdir()) == []


def test_invalid_git_ref_name(project: ProjectConfig) -> None:
    with pytest.raises(ConfigError, match="invalid branch name"):
        ensure_worktree(project, "bad~name")


def test_cannot_determine_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "odd", branch="odd")
    git(repo, "checkout", "-q", "--detach")
    project = ProjectConfig(alias="odd", path=repo)
    with pytest.raises(ConfigError) as info:
        ensure_worktree(project, "fresh")
    assert str(info.value) == "cannot determine base branch for new worktree"


def test_missing_project_path(tmp_path: Path) -> None:
    project = ProjectConfig(alias="gone", path=tmp_path / "gone")
    with pytest.raises(ConfigError, match="project path not found"):
        ensure_worktree(project, "x")


def test_git_failure_is_a_config_error(tmp_path: Path, repo: Path) -> None:
    project = ProjectConfig(alias="repo", path=repo, worktree_base="no-such-base")
    with pytest.raises(ConfigError, match="git worktree add failed"):
        ensure_worktree(project, "child")


def test_concurrent_requests_for_one_new_branch(project: ProjectConfig, repo: Path) -> None:
    import threading

    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_worktree(project, "race"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [repo / ".worktrees" / "race"] * 4
