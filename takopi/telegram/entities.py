"""Markdown tokens → Telegram plain text + ``MessageEntity`` dicts (UTF-16 offsets).

The reference takopi has sulguk lay out the HTML that markdown-it renders; this module lays
out the same text and entities from :func:`takopi.telegram.md_tree.build_tree`'s tree, so
the transport needs neither sulguk nor html5lib nor lxml (several MiB of memory per
process, and four times the time). The layout is sulguk's, quirks included, because the messages
must read the same: whitespace runs collapse to one space outside code blocks; paragraphs
and blocks are separated by soft and empty lines; list items get ``• `` or ``N. `` and one
NBSP of indent per nesting level; ``# h1`` is upper-cased bold + underline (h2 bold +
underline, h3 bold, h4 italic + underline, h5/h6 italic); a code block is a ``code`` and a
``pre`` entity (with its language); an image is ``🖼️alt`` linked to its source; ``---`` is
ten ``⎯``. Entities are listed as sulguk lists them: each when it ends, inner ones first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from .md_tree import Node, build_tree
from .unicode import utf16_len

Entity = dict[str, Any]

_DECORATION = {"em": "italic", "strong": "bold", "s": "strikethrough", "code": "code"}
_HEADING = {
    "h1": ("bold", "underline"),
    "h2": ("bold", "underline"),
    "h3": ("bold",),
    "h4": ("italic", "underline"),
    "h5": ("italic",),
    "h6": ("italic",),
}
_SPACES = "\r\n\t "  # what collapses (not NBSP, not the other Unicode spaces)
_SPACE_RUN_RE = re.compile("[\r\n\t ]+")
_IMAGE_MARK = "🖼️"
_RULE = "⎯" * 10

# where the canvas is: nothing written yet, at a line start, after an empty line, after a
# space (dropped if a line ends there), inside text
_START, _NEW_LINE, _EMPTY_LINE, _SPACE, _IN_TEXT = range(5)
_LINE_STARTS = (_START, _NEW_LINE, _EMPTY_LINE)


class _Canvas:
    """The text written so far, its UTF-16 size, and the layout state."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.state = _START
        self.indent = 0
        self.pre = False  # inside a code block: text kept as is
        self.upper = False  # inside an h1
        self.entities: list[Entity] = []

    def _write(self, text: str) -> None:
        self.parts.append(text)
        self.size += utf16_len(text)

    def _drop_trailing_space(self) -> None:
        if self.state == _SPACE:
            self.parts[-1] = self.parts[-1][:-1]
            self.size -= 1

    def soft_line(self) -> None:
        """End the line unless already at a line start."""
        if self.state == _START:
            return
        self._drop_trailing_space()
        if self.state not in _LINE_STARTS:
            self._write("\n")
            self.state = _NEW_LINE

    def line_break(self) -> None:
        if self.state == _START:
            return
        self._drop_trailing_space()
        self._write("\n")
        self.state = _NEW_LINE

    def empty_line(self) -> None:
        if self.state in (_START, _EMPTY_LINE):
            return
        if self.state == _NEW_LINE:
            self._write("\n")
        else:
            self._drop_trailing_space()
            self._write("\n\n")
        self.state = _EMPTY_LINE

    def add_text(self, text: str) -> None:
        if self.upper:
            text = text.upper()
        if self.pre:
            if self.state == _EMPTY_LINE and text.startswith("\n"):
                text = text[1:]
        else:
            if self.state != _IN_TEXT:
                text = text.lstrip(_SPACES)
            text = _SPACE_RUN_RE.sub(" ", text)
        if not text:
            return
        if self.indent and self.state in _LINE_STARTS:
            self._write("\xa0" * self.indent)
        self._write(text)
        if text.endswith(" "):
            self.state = _SPACE
        elif text.endswith("\n"):
            self.state = _NEW_LINE
        else:
            self.state = _IN_TEXT

    def entity(self, kind: str, offset: int, *, url: str = "", language: str = "") -> None:
        """Record an entity from ``offset`` to the current end (keys in sulguk's order)."""
        entity: Entity = {"type": kind, "url": url} if url else {"type": kind}
        entity["offset"] = offset
        entity["length"] = self.size - offset
        if language:
            entity["language"] = language
        self.entities.append(entity)


def _is_blank(child: Node | str) -> bool:
    return isinstance(child, str) and not child.strip()


def _children(canvas: _Canvas, children: Sequence[Node | str]) -> None:
    for child in children:
        _render(canvas, child)


def _decorated(canvas: _Canvas, kinds: Sequence[str], children: Sequence[Node | str]) -> None:
    """``children`` inside nested entities (``kinds`` outermost first)."""
    if not kinds:
        _children(canvas, children)
        return
    offset = canvas.size
    _decorated(canvas, kinds[1:], children)
    canvas.entity(kinds[0], offset)


def _heading(canvas: _Canvas, node: Node) -> None:
    upper = canvas.upper
    canvas.upper = upper or node.tag == "h1"
    _decorated(canvas, _HEADING[node.tag], node.children)
    canvas.upper = upper


def _render(canvas: _Canvas, node: Node | str) -> None:
    if isinstance(node, str):
        canvas.add_text(node)
        return
    tag = node.tag
    if tag == "p":
        canvas.empty_line()
        canvas.soft_line()
        _children(canvas, node.children)
        canvas.soft_line()
        canvas.empty_line()
    elif tag in _DECORATION:
        _decorated(canvas, (_DECORATION[tag],), node.children)
    elif tag == "a":
        if node.attr:
            offset = canvas.size
            _children(canvas, node.children)
            canvas.entity("text_link", offset, url=node.attr)
        else:
            _children(canvas, node.children)
    elif tag in _HEADING:
        canvas.soft_line()
        canvas.empty_line()
        _heading(canvas, node)
        canvas.soft_line()
    elif tag in ("ul", "ol"):
        _list(canvas, node)
    elif tag == "li":
        _item(canvas, node)
    elif tag == "pre":
        _code_block(canvas, node)
    elif tag == "blockquote":
        _decorated(canvas, ("blockquote",), node.children)
    elif tag == "img":
        _image(canvas, node)
    elif tag == "br":
        canvas.line_break()
    elif tag == "hr":
        canvas.soft_line()
        canvas.add_text(_RULE)
        canvas.soft_line()
    else:
        _children(canvas, node.children)


def _code_block(canvas: _Canvas, node: Node) -> None:
    canvas.empty_line()
    pre = canvas.pre
    canvas.pre = True
    offset = canvas.size
    canvas.soft_line()
    _children(canvas, node.children)
    canvas.soft_line()
    code = node.children[0] if len(node.children) == 1 else None
    language = code.attr if isinstance(code, Node) and code.tag == "code" else ""
    canvas.entity("pre", offset, language=language)
    canvas.pre = pre
    canvas.empty_line()


def _image(canvas: _Canvas, node: Node) -> None:
    if not node.attr:
        canvas.add_text(_IMAGE_MARK + node.value)
        return
    offset = canvas.size
    canvas.add_text(_IMAGE_MARK + node.value)
    canvas.entity("text_link", offset, url=node.attr)


def _list(canvas: _Canvas, node: Node) -> None:
    canvas.soft_line()
    number = 0
    for child in node.children:
        if isinstance(child, Node) and child.tag == "li":
            number = child.value if child.value is not None else number + 1
            canvas.add_text(f"{number}. " if node.tag == "ol" else "• ")
        _render(canvas, child)
        canvas.soft_line()


def _item(canvas: _Canvas, node: Node) -> None:
    """A list item's content, starting on its mark's line: leading blank text is skipped,
    and a first paragraph or heading adds no empty line before itself."""
    canvas.indent += 1
    children = node.children
    first = next((i for i, child in enumerate(children) if not _is_blank(child)), None)
    if first is not None:
        lead = children[first]
        rest = children[first + 1 :]
        if isinstance(lead, Node) and lead.tag == "p":
            _children(canvas, lead.children)
            if any(not _is_blank(c) for c in lead.children) and any(not _is_blank(c) for c in rest):
                canvas.soft_line()
        elif isinstance(lead, Node) and lead.tag in _HEADING:
            _heading(canvas, lead)
            canvas.soft_line()
        else:
            _render(canvas, lead)
        _children(canvas, rest)
    canvas.indent -= 1


def render_tokens(md: MarkdownIt, tokens: Sequence[Token]) -> tuple[str, list[Entity]]:
    """Plain text and entities for ``md``'s ``tokens``: what markdown-it → HTML → sulguk
    gives (offsets and lengths in UTF-16 units, before any trimming)."""
    canvas = _Canvas()
    _render(canvas, build_tree(md, tokens))
    return "".join(canvas.parts), canvas.entities


__all__ = ["Entity", "render_tokens"]
