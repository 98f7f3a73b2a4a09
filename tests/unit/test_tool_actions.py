"""The shared tool-name → (kind, title) mapping (behavior.md §1.9)."""

from __future__ import annotations

from typing import Any

import pytest

from takopi.runners.tool_actions import file_change_detail, tool_input_path, tool_kind_and_title
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir


@pytest.fixture
def in_repo() -> Any:
    token = set_run_base_dir("/home/me/repo")
    yield
    reset_run_base_dir(token)


@pytest.mark.parametrize(
    ("name", "tool_input", "kind", "title"),
    [
        ("Bash", {"command": "ls /home/me/repo/src"}, "command", "ls src"),
        ("shell", {"command": "cat /home/me/repo2/x"}, "command", "cat /home/me/repo2/x"),
        ("KillShell", {"shell_id": "1"}, "command", "KillShell"),
        ("Edit", {"file_path": "/home/me/repo/a.py"}, "file_change", "a.py"),
        ("write", {"path": "/elsewhere/b.py"}, "file_change", "/elsewhere/b.py"),
        ("MultiEdit", {"filePath": "/home/me/repo/c/d.py"}, "file_change", "c/d.py"),
        ("NotebookEdit", {}, "file_change", "NotebookEdit"),
        ("Read", {"file_path": "/home/me/repo/README.md"}, "tool", "read: `README.md`"),
        ("ls", {"path": "/home/me/repo/src"}, "tool", "ls: `src`"),
        ("Glob", {"pattern": "**/*.py"}, "tool", "glob: `**/*.py`"),
        ("Grep", {"pattern": "TODO"}, "tool", "grep: TODO"),
        ("find", {"pattern": "*.md"}, "tool", "find: *.md"),
        ("WebSearch", {"query": "anyio docs"}, "web_search", "anyio docs"),
        ("web_fetch", {"url": "https://example.com"}, "web_search", "https://example.com"),
        ("TodoWrite", {"todos": []}, "note", "update todos"),
        ("todoread", {}, "note", "read todos"),
        ("AskUserQuestion", {"questions": []}, "note", "ask user"),
        ("Task", {"description": "explore", "prompt": "long"}, "subagent", "explore"),
        ("agent", {"prompt": "assist"}, "subagent", "assist"),
        ("mcp__server__thing", {"x": 1}, "tool", "mcp__server__thing"),
    ],
)
def test_tool_kind_and_title(
    in_repo: None, name: str, tool_input: dict[str, Any], kind: str, title: str
) -> None:
    assert tool_kind_and_title(name, tool_input, path_keys=("file_path", "path", "filePath")) == (
        kind,
        title,
    )


def test_task_kind_override_and_path_keys(in_repo: None) -> None:
    assert tool_kind_and_title("task", {"description": "d"}, path_keys=(), task_kind="tool") == (
        "tool",
        "d",
    )
    # Only the given path keys are consulted, in order.
    assert tool_kind_and_title("edit", {"file_path": "/x", "path": "/y"}, path_keys=("path",)) == (
        "file_change",
        "/y",
    )
    assert tool_input_path({"a": "", "b": "/p"}, path_keys=("a", "b")) == "/p"
    assert tool_input_path({"a": 3}, path_keys=("a",)) is None
    assert tool_input_path(None, path_keys=("a",)) is None


def test_non_mapping_input_does_not_crash() -> None:
    assert tool_kind_and_title("bash", None, path_keys=()) == ("command", "bash")
    assert tool_kind_and_title("read", "oops", path_keys=("path",)) == ("tool", "read")  # type: ignore[arg-type]


def test_file_change_detail(in_repo: None) -> None:
    assert file_change_detail("/home/me/repo/a.py") == {
        "changes": [{"path": "a.py", "kind": "update"}]
    }
    assert file_change_detail(None) == {"changes": []}
