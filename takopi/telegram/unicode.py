"""Text as Telegram counts and carries it: UTF-16 lengths and lone surrogates.

A lone UTF-16 surrogate is not Unicode, yet it reaches Python strings easily: JSON allows
``"\\ud83d"`` escapes (a JavaScript CLI that cuts its output in the middle of an emoji
prints one), and so does an update sent by a misbehaving client. Such a string cannot be
encoded as UTF-8, so it could neither be sent to the Bot API nor written to an engine's
stdin: :func:`replace_lone_surrogates` turns each one into U+FFFD (one UTF-16 unit too, so
entity offsets stay right).

C0 control characters other than tab and line breaks (a terminal's ``ESC``, a NUL) are not
allowed in XML, and the HTML → entities step refuses them: :func:`replace_control_chars`
makes them U+FFFD as well before rendering.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_XML_UNSAFE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (a high+low pair that was kept
    as two code points becomes the character it encodes)."""
    if _SURROGATE_RE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def scrub_surrogates(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, scalars) with lone surrogates replaced in
    every string, keys included; returns ``value`` itself when there was none."""
    if isinstance(value, str):
        return replace_lone_surrogates(value)
    if isinstance(value, dict):
        items = [(scrub_surrogates(k), scrub_surrogates(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list):
        scrubbed = [scrub_surrogates(v) for v in value]
        return value if all(a is b for a, b in zip(scrubbed, value, strict=True)) else scrubbed
    return value


def replace_control_chars(text: str) -> str:
    """``text`` with the characters XML does not allow (C0 controls other than tab, LF and
    CR; U+FFFE, U+FFFF) replaced by U+FFFD, one UTF-16 unit each as before."""
    return _XML_UNSAFE_RE.sub("\ufffd", text)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (Telegram's unit for offsets and limits); a lone
    surrogate counts as the one unit it is."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


__all__ = [
    "replace_control_chars",
    "replace_lone_surrogates",
    "scrub_surrogates",
    "utf16_len",
]
