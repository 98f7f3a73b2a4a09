"""markdown-it tokens → the element tree html5lib builds from markdown-it's HTML.

The reference takopi renders Markdown to HTML and has sulguk (on html5lib + lxml) turn it
into Telegram text + entities; :mod:`takopi.telegram.entities` lays out the same text from
this tree instead, without the HTML round trip. The tree keeps what the HTML step adds:

* the newlines markdown-it writes between block tags are text nodes (sulguk sees them);
* an autolink inside a link's text ends that link (HTML's "adoption agency": ``<a>`` may not
  nest) and reopens the emphasis opened inside it around what follows;
* a form feed (``&#12;``) is a space, as html5lib's lxml tree makes it in text. (In an
  attribute — image alt, link title — lxml refused it and sulguk raised: a deliberate
  difference, it is a space there too, and titles are not used.)
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

_FORMATTING = frozenset({"a", "em", "strong", "s"})
_CODE_CLASS_RE = re.compile(r'<pre><code class="([^"]*)">')
_LANGUAGE_PREFIX = "language-"


class Node:
    """An element of the tree html5lib builds: tag, one attribute, children."""

    __slots__ = ("active", "attr", "children", "tag", "value")

    def __init__(self, tag: str, attr: str = "", value: Any = None) -> None:
        self.tag = tag
        self.attr = attr  # a: href; img: src; code: its language
        self.value = value  # li: its number; img: alt
        self.children: list[Node | str] = []
        self.active = tag in _FORMATTING  # in html5lib's list of active formatting elements


class _TreeBuilder:
    """The part of html5lib's tree construction that markdown-it's HTML can reach."""

    def __init__(self) -> None:
        self.root = Node("body")
        self.stack = [self.root]
        self.glue = True  # may the next text join the text child before it?

    def open(self, node: Node) -> None:
        if node.tag == "a":
            self._end_open_link()
        if node.active:  # "Noah's Ark": at most three identical active formatting elements
            same = [n for n in self.stack if n.active and n.tag == node.tag and n.attr == node.attr]
            if len(same) >= 3:
                same[0].active = False
        self.add(node)
        self.stack.append(node)

    def _end_open_link(self) -> None:
        """``<a>`` inside ``<a>``: the outer one ends here, and the emphasis opened inside it
        is reopened (as new elements) around what follows."""
        depth = next((i for i, n in enumerate(self.stack) if n.tag == "a"), None)
        if depth is None:
            return
        popped = self.stack[depth + 1 :]
        del self.stack[depth:]
        for old in popped:
            if old.active:
                clone = Node(old.tag, old.attr)
                self.add(clone)
                self.stack.append(clone)

    def close(self, tag: str) -> None:
        """End the innermost open ``tag``; an end tag with none open is ignored."""
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def add(self, node: Node) -> None:
        self.stack[-1].children.append(node)
        self.glue = True

    def text(self, text: str) -> None:
        if not text:
            return
        text = text.replace("\x0c", " ")  # as html5lib's lxml tree builder does
        children = self.stack[-1].children
        if self.glue and children and isinstance(children[-1], str):
            children[-1] += text
        else:
            children.append(text)
        self.glue = True


def _block_tag(builder: _TreeBuilder, tokens: Sequence[Token], idx: int) -> None:
    """What markdown-it's ``renderToken`` writes for a block token, newlines included."""
    token = tokens[idx]
    if token.hidden:  # the paragraphs of a tight list
        return
    if token.nesting != -1 and idx and tokens[idx - 1].hidden:
        builder.text("\n")
    if token.nesting == -1:
        builder.close(token.tag)
    elif token.nesting == 0:
        builder.add(Node(token.tag))
    else:
        builder.open(Node(token.tag, value=_item_number(tokens, idx)))
        after = tokens[idx + 1] if idx + 1 < len(tokens) else None
        if after is not None and (
            after.type == "inline"
            or after.hidden
            or (after.nesting == -1 and after.tag == token.tag)
        ):
            return
    builder.text("\n")


def _item_number(tokens: Sequence[Token], idx: int) -> int | None:
    """sulguk ignores ``<ol start>``, so render.py always gave the start to the list's first
    item as ``<li value>`` (which sulguk honours): the same number here."""
    if tokens[idx].type != "list_item_open" or tokens[idx - 1].type != "ordered_list_open":
        return None
    start = tokens[idx - 1].attrGet("start")
    return None if start is None else int(start)


def _html(md: MarkdownIt) -> RendererHTML:
    """``md``'s HTML renderer: the fence class and image alt are taken from it."""
    if not isinstance(md.renderer, RendererHTML):
        raise TypeError("takopi's Markdown rendering needs markdown-it's HTML renderer")
    return md.renderer


def _code_language(md: MarkdownIt, tokens: Sequence[Token], idx: int) -> str:
    """The ``language-…`` class markdown-it gives a fence, read the way sulguk reads it."""
    if not tokens[idx].info:
        return ""
    # Its opening tags are all that is read: render it without the code itself.
    bare = [tokens[idx].copy(content="")]
    match = _CODE_CLASS_RE.match(_html(md).fence(bare, 0, md.options, {}))
    classes = html.unescape(match.group(1)).replace("\x0c", " ").split() if match else []
    lang = next((c for c in classes if c.startswith(_LANGUAGE_PREFIX)), "")
    return lang[len(_LANGUAGE_PREFIX) :]


def _inline(md: MarkdownIt, builder: _TreeBuilder, tokens: Sequence[Token]) -> None:
    for token in tokens:
        kind = token.type
        if kind in ("text", "text_special"):
            builder.text(token.content)
        elif kind == "softbreak":
            builder.text("\n")
        elif kind == "hardbreak":
            builder.add(Node("br"))
            builder.text("\n")
        elif kind == "code_inline":
            builder.open(Node("code"))
            builder.text(token.content)
            builder.close("code")
        elif kind == "image":
            src = str(token.attrGet("src") or "")
            alt = _html(md).renderInlineAsText(token.children, md.options, {})
            if src or alt:
                builder.add(Node("img", src, alt.replace("\x0c", " ")))
            else:  # sulguk drops it, the text around it stays two text nodes
                builder.glue = False
        elif kind == "link_open":
            builder.open(Node("a", str(token.attrGet("href") or "")))
        elif token.nesting == 1:
            builder.open(Node(token.tag))
        elif token.nesting == -1:
            builder.close(token.tag)


def build_tree(md: MarkdownIt, tokens: Sequence[Token]) -> Node:
    """The element tree html5lib would build from ``md``'s HTML for ``tokens``."""
    builder = _TreeBuilder()
    for idx, token in enumerate(tokens):
        if token.type == "inline":
            _inline(md, builder, token.children or [])
        elif token.type in ("fence", "code_block"):
            lang = _code_language(md, tokens, idx) if token.type == "fence" else ""
            builder.open(Node("pre"))
            builder.open(Node("code", lang))
            builder.text(token.content)
            builder.close("code")
            builder.close("pre")
            builder.text("\n")
        else:
            _block_tag(builder, tokens, idx)
    return builder.root
