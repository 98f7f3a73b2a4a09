"""Plain-text rendering of takopi's Markdown messages for a terminal."""

from __future__ import annotations

import re

_HARD_BREAK = re.compile(r" {2,}\n")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def markdown_to_plain(text: str) -> list[str]:
    """Lines of ``text`` with Markdown hard breaks and bold markers removed.

    Inline code backticks are kept: they read fine in a terminal and keep resume lines
    copy-pasteable exactly as in chat.
    """
    text = _HARD_BREAK.sub("\n", text)
    text = _BOLD.sub(r"\1", text)
    return text.split("\n")


def new_lines(previous: list[str], current: list[str]) -> list[str]:
    """Lines of ``current`` that were not in ``previous`` (order kept), so an edited progress
    message prints only what changed: the header and actions whose status moved."""
    seen = set(previous)
    return [line for line in current if line.strip() and line not in seen]
