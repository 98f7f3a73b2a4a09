"""The common tool-name → action kind/title mapping shared by claude, opencode and pi.

Titles are what the progress message shows: commands and paths are relativized to the run
base dir so that ``/home/me/repo/src/a.py`` shows as ``src/a.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from takopi.model import ActionKind
from takopi.utils.paths import relativize_command, relativize_path

DEFAULT_PATH_KEYS: tuple[str, ...] = ("file_path", "path", "filePath")

_COMMAND_TOOLS = frozenset({"bash", "shell", "killshell"})
_FILE_CHANGE_TOOLS = frozenset({"edit", "write", "notebookedit", "multiedit"})
_WEB_SEARCH_TOOLS = frozenset({"websearch", "web_search"})
_WEB_FETCH_TOOLS = frozenset({"webfetch", "web_fetch"})
_TASK_TOOLS = frozenset({"task", "agent"})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def tool_input_path(
    tool_input: Mapping[str, Any] | None, *, path_keys: Sequence[str] = DEFAULT_PATH_KEYS
) -> str | None:
    """The first non-empty string among ``path_keys`` in ``tool_input`` (not relativized)."""
    if not isinstance(tool_input, Mapping):
        return None
    for key in path_keys:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def tool_kind_and_title(
    tool_name: str,
    tool_input: Mapping[str, Any] | None,
    *,
    path_keys: Sequence[str] = DEFAULT_PATH_KEYS,
    task_kind: ActionKind = "subagent",
) -> tuple[ActionKind, str]:
    """Map a tool call to ``(kind, title)``.

    ``bash|shell|killshell`` → command; ``edit|write|notebookedit|multiedit`` → file_change
    (title = path); ``read``/``ls`` → tool ``read: `path```; ``glob`` → ``glob: `pattern```;
    ``grep``/``find`` → ``grep: pattern``; web search/fetch → web_search (query / url);
    todo tools and ``askuserquestion`` → note; ``task|agent`` → ``task_kind`` titled by the
    description or prompt; anything else → tool titled by its name. Matching ignores case.
    """
    name = str(tool_name or "tool")
    lower = name.lower()
    data: Mapping[str, Any] = tool_input if isinstance(tool_input, Mapping) else {}

    if lower in _COMMAND_TOOLS:
        command = _text(data.get("command"))
        return "command", relativize_command(command) if command else name

    if lower in _FILE_CHANGE_TOOLS:
        path = tool_input_path(data, path_keys=path_keys)
        return "file_change", relativize_path(path) if path else name

    if lower in {"read", "ls"}:
        path = tool_input_path(data, path_keys=path_keys)
        return "tool", f"{lower}: `{relativize_path(path)}`" if path else lower

    if lower == "glob":
        pattern = _text(data.get("pattern"))
        return "tool", f"glob: `{pattern}`" if pattern else "glob"

    if lower in {"grep", "find"}:
        pattern = _text(data.get("pattern"))
        return "tool", f"{lower}: {pattern}" if pattern else lower

    if lower in _WEB_SEARCH_TOOLS:
        query = _text(data.get("query"))
        return "web_search", query or "search"

    if lower in _WEB_FETCH_TOOLS:
        url = _text(data.get("url"))
        return "web_search", url or "fetch"

    if lower == "todowrite":
        return "note", "update todos"
    if lower == "todoread":
        return "note", "read todos"
    if lower == "askuserquestion":
        return "note", "ask user"

    if lower in _TASK_TOOLS:
        label = _text(data.get("description")) or _text(data.get("prompt"))
        return task_kind, label or name

    return "tool", name


def file_change_detail(path: str | None) -> dict[str, Any]:
    """``{"changes": [{"path": <relativized>, "kind": "update"}]}`` for a file-change action."""
    if not path:
        return {"changes": []}
    return {"changes": [{"path": relativize_path(path), "kind": "update"}]}


__all__ = [
    "DEFAULT_PATH_KEYS",
    "file_change_detail",
    "tool_input_path",
    "tool_kind_and_title",
]
