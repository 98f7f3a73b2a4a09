"""Markdown rendering of progress and final messages.

Layout: ``header`` / ``body`` / ``footer`` joined by blank lines. The header is
``label · engine · elapsed[ · step N]``; the progress body lists the last few actions with a
status glyph; the footer holds the ``ctx:`` line then the resume line, joined by Markdown hard
breaks. Final messages carry the answer as body and no action lines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from takopi.model import Action, ActionPhase
from takopi.progress import ActionState, ProgressState
from takopi.utils.paths import relativize_command, relativize_path

STATUS: dict[str, str] = {"running": "▸", "update": "↻", "done": "✓", "fail": "✗"}
HEADER_SEP = " · "
HARD_BREAK = "  \n"
MAX_PROGRESS_CMD_LEN = 300
MAX_FILE_CHANGES_INLINE = 3


@dataclass(frozen=True, slots=True)
class MarkdownParts:
    """The three sections of a rendered message (any but the header may be empty)."""

    header: str
    body: str | None = None
    footer: str | None = None


def assemble_markdown_parts(parts: MarkdownParts) -> str:
    """Join the non-empty sections with blank lines."""
    return "\n\n".join(chunk for chunk in (parts.header, parts.body, parts.footer) if chunk)


def format_elapsed(elapsed_s: float) -> str:
    """``42s``, ``3m 07s``, ``2h 05m``."""
    try:
        total = max(0, int(elapsed_s))
    except (TypeError, ValueError, OverflowError):
        total = 0
    minutes, seconds = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def format_header(elapsed_s: float, step: int | None, *, label: str, engine: str) -> str:
    """``label · engine · elapsed[ · step N]``."""
    parts = [label, engine, format_elapsed(elapsed_s)]
    if step:
        parts.append(f"step {step}")
    return HEADER_SEP.join(parts)


def shorten(text: str, width: int | None) -> str:
    """Fit ``text`` into ``width`` characters, ending with ``…`` when cut.

    Like ``textwrap.shorten`` (whitespace collapsed, cut at a word boundary); a text without a
    usable word boundary is hard-cut instead of collapsing to a lone ``…``.
    """
    if width is None or len(text) <= width:
        return text
    if width <= 0:
        return ""
    short = textwrap.shorten(text, width=width, placeholder="…")
    if short == "…" or len(short) < width // 2:
        collapsed = " ".join(text.split())
        if len(collapsed) <= width:
            return collapsed
        return collapsed[: width - 1].rstrip() + "…"
    return short


def _detail(action: Action) -> Mapping[str, Any]:
    detail = action.detail
    return detail if isinstance(detail, Mapping) else {}


def _exit_code(action: Action) -> int | None:
    code = _detail(action).get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return code


def action_status(action: Action, *, completed: bool, ok: bool | None = None) -> str:
    """The status glyph of a completed (``✓``/``✗``) or running (``▸``) action."""
    if not completed:
        return STATUS["running"]
    if ok is not None:
        return STATUS["done"] if ok else STATUS["fail"]
    code = _exit_code(action)
    if code is not None and code != 0:
        return STATUS["fail"]
    return STATUS["done"]


def action_suffix(action: Action) -> str:
    """`` (exit N)`` for a nonzero exit code."""
    code = _exit_code(action)
    if code is not None and code != 0:
        return f" (exit {code})"
    return ""


def _change_field(change: Any, name: str) -> Any:
    if isinstance(change, Mapping):
        return change.get(name)
    return getattr(change, name, None)


def format_file_change_title(action: Action, *, command_width: int | None) -> str:
    """``files: update `a`, add `b`, …(N more)`` from ``detail["changes"]``."""
    changes = _detail(action).get("changes")
    rendered: list[str] = []
    if isinstance(changes, Iterable) and not isinstance(changes, str | bytes | Mapping):
        for change in changes:
            path = _change_field(change, "path")
            if not isinstance(path, str) or not path:
                continue
            kind = _change_field(change, "kind")
            verb = kind if isinstance(kind, str) and kind else "update"
            rendered.append(f"{verb} `{relativize_path(path)}`")
    if rendered:
        if len(rendered) > MAX_FILE_CHANGES_INLINE:
            remaining = len(rendered) - MAX_FILE_CHANGES_INLINE
            rendered = [*rendered[:MAX_FILE_CHANGES_INLINE], f"…({remaining} more)"]
        return f"files: {shorten(', '.join(rendered), command_width)}"
    title = str(action.title or "")
    relative = relativize_path(title)
    if relative != title:
        title = f"`{relative}`"
    return f"files: {shorten(title, command_width)}"


def format_action_title(action: Action, *, command_width: int | None) -> str:
    """An action's title as shown in progress lines, by kind."""
    title = str(action.title or "")
    kind = action.kind
    if kind == "command":
        return f"`{shorten(relativize_command(title), command_width)}`"
    if kind == "tool":
        return f"tool: {shorten(relativize_path(title), command_width)}"
    if kind == "web_search":
        return f"searched: {shorten(title, command_width)}"
    if kind == "subagent":
        return f"subagent: {shorten(title, command_width)}"
    if kind == "file_change":
        return format_file_change_title(action, command_width=command_width)
    return shorten(title, command_width)


def format_action_line(
    action: Action, phase: ActionPhase, ok: bool | None, *, command_width: int | None
) -> str:
    """``<glyph> <title>[ (exit N)]``."""
    title = format_action_title(action, command_width=command_width)
    if phase != "completed":
        glyph = STATUS["update"] if phase == "updated" else STATUS["running"]
        return f"{glyph} {title}"
    return f"{action_status(action, completed=True, ok=ok)} {title}{action_suffix(action)}"


class MarkdownFormatter:
    """Turns a :class:`ProgressState` into :class:`MarkdownParts`."""

    def __init__(
        self, *, max_actions: int = 5, command_width: int | None = MAX_PROGRESS_CMD_LEN
    ) -> None:
        self.max_actions = max(0, int(max_actions))
        self.command_width = command_width

    def render_progress_parts(
        self, state: ProgressState, *, elapsed_s: float, label: str = "working"
    ) -> MarkdownParts:
        """Header with ``label``, the last ``max_actions`` action lines, footer."""
        header = format_header(
            elapsed_s, state.action_count or None, label=label, engine=state.engine
        )
        lines = [self._action_line(item) for item in self._visible_actions(state)]
        body = HARD_BREAK.join(lines) if lines else None
        return MarkdownParts(header=header, body=body, footer=self.format_footer(state))

    def render_final_parts(
        self, state: ProgressState, *, elapsed_s: float, status: str, answer: str
    ) -> MarkdownParts:
        """Header with ``status`` as label, the answer as body (no action lines), footer."""
        header = format_header(
            elapsed_s, state.action_count or None, label=status, engine=state.engine
        )
        text = (answer or "").strip()
        return MarkdownParts(header=header, body=text or None, footer=self.format_footer(state))

    def format_footer(self, state: ProgressState) -> str | None:
        """``ctx:`` line then resume line, hard-break joined; None when both are absent."""
        lines = [line for line in (state.context_line, state.resume_line) if line]
        return HARD_BREAK.join(lines) if lines else None

    def _visible_actions(self, state: ProgressState) -> list[ActionState]:
        if self.max_actions == 0:
            return []
        return list(state.actions)[-self.max_actions :]

    def _action_line(self, item: ActionState) -> str:
        return format_action_line(
            item.action, item.display_phase, item.ok, command_width=self.command_width
        )


__all__ = [
    "HARD_BREAK",
    "HEADER_SEP",
    "MAX_FILE_CHANGES_INLINE",
    "MAX_PROGRESS_CMD_LEN",
    "STATUS",
    "MarkdownFormatter",
    "MarkdownParts",
    "assemble_markdown_parts",
    "format_action_line",
    "format_action_title",
    "format_elapsed",
    "format_header",
    "shorten",
]
