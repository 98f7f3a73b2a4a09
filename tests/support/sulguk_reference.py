"""The reference takopi's Markdown pipeline — markdown-it → HTML → sulguk — to compare
:mod:`takopi.telegram.entities` against (sulguk is a test-only dependency now).

Same preprocessing as :func:`takopi.telegram.render.render_markdown`, the same
``<ol start>`` → ``<li value>`` workaround render.py applied before sulguk, and one
deliberate difference made here too: a form feed is a space (html5lib makes it one in text,
but lxml raises on it in an attribute, which made sulguk fail on ``![a&#12;b](u)``).
"""

from __future__ import annotations

import re
from typing import Any

from sulguk import transform_html

from takopi.telegram.entities import render_tokens
from takopi.telegram.render import _md, preprocess_markdown
from takopi.telegram.unicode import replace_control_chars, replace_lone_surrogates

_OL_START_RE = re.compile(r'<ol start="(\d+)">\n<li>')


def prepared(markdown: str) -> str:
    """The Markdown as render_markdown hands it to markdown-it."""
    return preprocess_markdown(replace_control_chars(replace_lone_surrogates(markdown)))


def sulguk_render(markdown: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, entities) from markdown-it's HTML through sulguk, untrimmed."""
    html = _md.render(prepared(markdown))
    html = _OL_START_RE.sub(r'<ol start="\1">\n<li value="\1">', html).replace("\x0c", " ")
    result = transform_html(html)
    return result.text, [dict(e) for e in result.entities]


def token_render(markdown: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, entities) from takopi's own renderer, untrimmed."""
    return render_tokens(_md, _md.parse(prepared(markdown)))
