"""Markdown → Telegram text + entities (no ``parse_mode``), trimming and splitting.

As in the reference takopi, markdown-it-py parses the Markdown (CommonMark, raw HTML off,
strikethrough on) and the result is what sulguk makes of markdown-it's HTML: plain text plus
``MessageEntity`` dicts with UTF-16 offsets — what the Bot API expects (so soft line breaks
read as spaces, headings are upper-cased bold+underline, bullets are ``•``). The layout is
done from the tokens by :mod:`takopi.telegram.entities` (same output, without sulguk's
html5lib + lxml in the transport process; the tests compare the two). Links stay
``text_link`` entities only for ``http(s)://host`` and ``tg:`` URLs (anything else would
make Telegram answer 400).

Messages are built from three Markdown parts — header, body, footer — rendered separately and
joined by blank lines, so a broken body (say, an unclosed code fence) can never swallow the
footer; only the body is ever trimmed or split: the ``ctx:`` line and the resume line in the
footer are never cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from markdown_it import MarkdownIt

from takopi.logging import get_logger

from .entities import render_tokens
from .unicode import replace_control_chars, replace_lone_surrogates, utf16_len

MAX_BODY_CHARS = 3500
MAX_MESSAGE_UTF16 = 4096

_BULLET_RE = re.compile(r"(?m)^(\s*)•")
_FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>[`~]{3,})(?P<info>.*)$")
_ORDERED_RE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<marker>\d+[.)])\s+")
_UNORDERED_RE = re.compile(r"^(?P<indent>[ \t]{0,3})[-+*]\s+")
_SPLIT_PARAGRAPH_RE = re.compile(r"(\n{2,})")

Entity = dict[str, Any]

_md = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")

log = get_logger(__name__)


def is_safe_link(url: str) -> bool:
    """Only ``http(s)://host…`` and ``tg:`` URLs become ``text_link`` entities."""
    url = url.strip()
    if url.lower().startswith("tg:"):
        return True
    try:
        parsed = urlparse(url)
    except ValueError:
        return False
    return parsed.scheme.lower() in {"http", "https"} and bool(parsed.netloc)


# -- Markdown preprocessing -----------------------------------------------------------------


def _fence_state(line: str, fence: str | None) -> tuple[bool, str | None]:
    """Returns (is_fence_line, new open fence)."""
    m = _FENCE_RE.match(line)
    if m is None:
        return False, fence
    marker = m.group("fence")
    if fence is None:
        if marker[0] == "`" and "`" in m.group("info"):
            return False, fence  # not a fence opener per CommonMark
        return True, marker
    if marker[0] == fence[0] and len(marker) >= len(fence) and not m.group("info").strip():
        return True, None
    return False, fence


def keep_list_numbering(markdown: str) -> str:
    """Indent unordered items that directly follow an ordered item (same indent) by 3 spaces,
    so they nest under it instead of breaking the numbered list (code fences untouched)."""
    out: list[str] = []
    fence: str | None = None
    ordered_indent: int | None = None
    for line in markdown.split("\n"):
        is_fence, new_fence = _fence_state(line, fence)
        if fence is not None or is_fence:
            fence = new_fence
            out.append(line)
            continue
        ordered = _ORDERED_RE.match(line)
        if ordered is not None:
            ordered_indent = len(ordered.group("indent"))
            out.append(line)
            continue
        unordered = _UNORDERED_RE.match(line)
        if (
            unordered is not None
            and ordered_indent is not None
            and len(unordered.group("indent")) == ordered_indent
        ):
            out.append("   " + line)
            continue
        indent = len(line) - len(line.lstrip(" \t"))
        if not line.strip() or (unordered is None and indent <= (ordered_indent or 0)):
            ordered_indent = None
        out.append(line)
    return "\n".join(out)


def preprocess_markdown(markdown: str) -> str:
    """``•`` bullets → ``-``, then :func:`keep_list_numbering`."""
    return keep_list_numbering(_BULLET_RE.sub(r"\1-", markdown))


# -- Markdown → entities ------------------------------------------------------------


def _clip_entities(entities: Sequence[Any], size: int) -> list[Entity]:
    r"""Drop unsafe ``text_link``\ s and clip entities to the (right-stripped) text."""
    out: list[Entity] = []
    for raw in entities:
        ent = dict(raw)
        if ent.get("type") == "text_link" and not is_safe_link(str(ent.get("url") or "")):
            continue
        offset = int(ent["offset"])
        end = min(offset + int(ent["length"]), size)
        if end - offset > 0:
            ent["length"] = end - offset
            out.append(ent)
    return out


def render_markdown(markdown: str) -> tuple[str, list[Entity]]:
    """Render Markdown into (plain text, entities), as markdown-it → HTML → sulguk would.
    Lone surrogates and control characters (agent output can carry them: a cut emoji, a
    terminal colour code) become U+FFFD first, as they must for the Bot API (and as the
    reference's HTML step needs)."""
    if not markdown.strip():
        return "", []
    markdown = replace_control_chars(replace_lone_surrogates(markdown))
    try:
        text, entities = render_tokens(_md, _md.parse(preprocess_markdown(markdown)))
    except Exception as exc:  # a bug of ours must not lose the message: send it as is
        log.warning("telegram.render.failed", error=f"{type(exc).__name__}: {exc}")
        return markdown.strip(), []
    text = text.rstrip()
    return text, _clip_entities(entities, utf16_len(text))


# -- message assembly ---------------------------------------------------------------------


def join_rendered(pieces: Sequence[tuple[str, list[Entity]]]) -> tuple[str, list[Entity]]:
    """Join rendered pieces with blank lines, shifting entity offsets."""
    text = ""
    entities: list[Entity] = []
    for piece_text, piece_entities in pieces:
        if not piece_text:
            continue
        if text:
            text += "\n\n"
        base = utf16_len(text)
        text += piece_text
        entities.extend({**e, "offset": e["offset"] + base} for e in piece_entities)
    return text, entities


def render_parts(
    header: str | None, body: str | None, footer: str | None
) -> tuple[str, list[Entity]]:
    """Render header, body and footer separately and join them."""
    return join_rendered([render_markdown(p or "") for p in (header, body, footer)])


def trim_body(body: str | None, max_chars: int = MAX_BODY_CHARS) -> str | None:
    """Cut the body Markdown to ``max_chars`` (``body[:max-1] + "…"``)."""
    if body is None or len(body) <= max_chars:
        return body
    return body[: max_chars - 1] + "…"


def prepare_telegram(
    header: str | None,
    body: str | None,
    footer: str | None,
    *,
    max_body_chars: int = MAX_BODY_CHARS,
) -> tuple[str, list[Entity]]:
    """One message: body trimmed to ``max_body_chars`` (and further if the rendered message
    would still exceed Telegram's 4096 UTF-16 units); header and footer kept whole."""
    limit = max_body_chars
    while True:
        text, entities = render_parts(header, trim_body(body, limit), footer)
        size = utf16_len(text)
        if size <= MAX_MESSAGE_UTF16 or not body or limit <= 16:
            return text, entities
        limit = max(16, min(limit - 1, int(limit * MAX_MESSAGE_UTF16 / size) - 8))


def _open_fence_at_end(chunk: str, fence: tuple[str, str] | None) -> tuple[str, str] | None:
    """Track the open fence (opening line, marker) through ``chunk``."""
    marker = fence[1] if fence else None
    opening = fence[0] if fence else None
    for line in chunk.split("\n"):
        is_fence, new_marker = _fence_state(line, marker)
        if is_fence and marker is None and new_marker is not None:
            opening = line
        marker = new_marker
        if marker is None:
            opening = None
    if marker is None or opening is None:
        return None
    return opening, marker


def _pieces(body: str, max_chars: int) -> list[str]:
    """Paragraphs (with their separators), then lines, then hard cuts, each ≤ max_chars."""
    pieces: list[str] = []
    for part in _SPLIT_PARAGRAPH_RE.split(body):
        if len(part) <= max_chars:
            pieces.append(part)
            continue
        lines = part.split("\n")
        for i, line in enumerate(lines):
            seg = line + ("\n" if i < len(lines) - 1 else "")
            while len(seg) > max_chars:
                pieces.append(seg[:max_chars])
                seg = seg[max_chars:]
            if seg:
                pieces.append(seg)
    return pieces


def split_markdown_body(body: str, max_chars: int = MAX_BODY_CHARS) -> list[str]:
    """Split a Markdown body into chunks of at most ``max_chars`` (plus fence repair):
    on blank-line paragraphs, then lines, then hard cuts. A code fence open at the end of a
    chunk is closed there and reopened (same opening line) at the start of the next one."""
    if len(body) <= max_chars:
        return [body]
    raw_chunks: list[str] = []
    current = ""
    for piece in _pieces(body, max_chars):
        if current and len(current) + len(piece) > max_chars:
            raw_chunks.append(current)
            current = ""
        if not current and not piece.strip():
            continue  # don't start a chunk with a bare separator
        current += piece
    if current.strip():
        raw_chunks.append(current)
    chunks: list[str] = []
    fence: tuple[str, str] | None = None
    for raw in raw_chunks:
        chunk = raw.strip("\n")
        if fence is not None:
            chunk = fence[0] + "\n" + chunk
        fence = _open_fence_at_end(chunk, None)
        if fence is not None:
            indent = _FENCE_RE.match(fence[0])
            pad = indent.group("indent") if indent else ""
            chunk = chunk + "\n" + pad + fence[1]
        chunks.append(chunk)
    return chunks or [body]


def prepare_telegram_multi(
    header: str | None,
    body: str | None,
    footer: str | None,
    *,
    max_body_chars: int = MAX_BODY_CHARS,
) -> list[tuple[str, list[Entity]]]:
    """Split mode: one message per body chunk, each with the footer; chunks 2..N get
    ``<header> · continued (i/N)``."""
    if not body or len(body) <= max_body_chars:
        return [prepare_telegram(header, body, footer, max_body_chars=max_body_chars)]
    limit = max_body_chars
    while True:
        chunks = split_markdown_body(body, limit)
        total = len(chunks)
        messages = []
        for i, chunk in enumerate(chunks, start=1):
            chunk_header = header if i == 1 else f"{header or ''} · continued ({i}/{total})"
            messages.append(render_parts(chunk_header, chunk, footer))
        if all(utf16_len(t) <= MAX_MESSAGE_UTF16 for t, _ in messages) or limit <= 64:
            return messages
        limit = max(64, int(limit * 0.75))


__all__ = [
    "MAX_BODY_CHARS",
    "MAX_MESSAGE_UTF16",
    "is_safe_link",
    "join_rendered",
    "keep_list_numbering",
    "prepare_telegram",
    "prepare_telegram_multi",
    "preprocess_markdown",
    "render_markdown",
    "render_parts",
    "split_markdown_body",
    "trim_body",
    "utf16_len",
]
