"""Property-based fuzzing of Markdown → Telegram text + entities, trimming and splitting
(:mod:`takopi.telegram.render`)."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from takopi.telegram import render
from takopi.telegram.render import (
    MAX_MESSAGE_UTF16,
    is_safe_link,
    prepare_telegram,
    prepare_telegram_multi,
    render_markdown,
    split_markdown_body,
)
from takopi.telegram.unicode import replace_control_chars, replace_lone_surrogates
from tests.fakes.bot_api import ENTITY_TYPES
from tests.fuzz.strategies import odd_text, recorded_log

FENCE_LINE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def units(text: str) -> int:
    """UTF-16 length, counting a lone surrogate as the one unit it is."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def assert_valid_message(text: str, entities: list[dict]) -> None:
    """What the Bot API checks: entity types, integer offsets/lengths inside the UTF-16 text,
    safe ``text_link`` URLs."""
    size = units(text)
    for ent in entities:
        assert ent["type"] in ENTITY_TYPES, ent
        offset, length = ent["offset"], ent["length"]
        assert isinstance(offset, int) and isinstance(length, int), ent
        assert offset >= 0 and length > 0 and offset + length <= size, (ent, size)
        if ent["type"] == "text_link":
            assert is_safe_link(ent["url"]), ent


# Markdown built from block-level pieces so that lists, quotes, headings, fences and links
# show up far more often than in random text
_inline = st.one_of(
    odd_text(max_size=20),
    st.builds(lambda t: f"**{t}**", odd_text(max_size=10)),
    st.builds(lambda t: f"*{t}*", odd_text(max_size=10)),
    st.builds(lambda t: f"`{t}`", odd_text(max_size=10)),
    st.builds(lambda t: f"~~{t}~~", odd_text(max_size=10)),
    st.builds(
        lambda t, u: f"[{t}]({u})",
        odd_text(max_size=8),
        st.one_of(
            st.sampled_from(["https://example.com/x", "tg://user?id=1", "http://", "/rel"]),
            odd_text(max_size=12),
        ),
    ),
)
_line = st.lists(_inline, max_size=4).map(" ".join)
_block = st.one_of(
    _line,
    st.builds(lambda t: f"# {t}", _line),
    st.builds(lambda t: f"> {t}", _line),
    st.builds(lambda n, t: f"{n}. {t}", st.integers(0, 1_000_000_000), _line),
    st.builds(lambda t: f"- {t}", _line),
    st.builds(lambda t: f"• {t}", _line),
    st.builds(lambda t: f"   - {t}", _line),
    st.builds(
        lambda fence, info, body, close: f"{fence}{info}\n{body}\n{close}",
        st.sampled_from(["```", "~~~", "````"]),
        st.sampled_from(["", "python", "sh", " x y"]),
        odd_text(max_size=30),
        st.sampled_from(["```", "~~~", "", "````"]),
    ),
)
markdown = st.one_of(
    odd_text(max_size=80),
    st.lists(_block, max_size=8).flatmap(
        lambda blocks: st.sampled_from(["\n", "\n\n"]).map(lambda sep: sep.join(blocks))
    ),
)


@given(markdown)
@example("**red** \x1b[31m")  # a terminal colour code: found by this test
@example("*a*\ud800")  # a lone surrogate: found by this test
def test_rendered_entities_fit_the_text(md: str) -> None:
    with recorded_log(render) as log:
        text, entities = render_markdown(md)
    assert_valid_message(text, entities)
    assert text == text.rstrip()
    # never the fallback that sends the Markdown source as is
    assert not log.events("telegram.render.failed")


# header and footer as the presenter builds them: short, one or two lines
headers = st.builds(
    lambda label, elapsed: f"{label} · codex · {elapsed}",
    st.sampled_from(["done", "error", "working", "`cancelled`"]),
    st.sampled_from(["0s", "3m 07s"]),
)
footers = st.one_of(
    st.none(),
    st.builds(lambda t: f"`codex resume {t}`", st.text("abcdef0123456789-", max_size=36)),
    st.builds(
        lambda p, t: f"`ctx: {p}`  \n`codex resume {t}`",
        st.sampled_from(["api", "web @feat/x"]),
        st.text("abc", max_size=5),
    ),
)
long_bodies = st.one_of(
    markdown,
    st.builds(lambda md, n: md * n, markdown, st.integers(1, 200)),
    st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(["😀", "ß", "ﬃ", "a", "*a* ", "\n"]),
        st.integers(3000, 9000),
    ),
)


@given(headers, long_bodies, footers)
@example("done · codex · 0s", "\ud800", None)  # found by this test: UnicodeEncodeError
def test_prepared_message_fits_telegram(header: str, body: str, footer: str | None) -> None:
    text, entities = prepare_telegram(header, body, footer)
    assert units(text) <= MAX_MESSAGE_UTF16
    assert_valid_message(text, entities)
    # header and footer are never cut
    assert text.startswith(render_markdown(header)[0])
    if footer:
        assert text.endswith(render_markdown(footer)[0])


@given(headers, long_bodies, footers)
def test_split_messages_fit_telegram(header: str, body: str, footer: str | None) -> None:
    messages = prepare_telegram_multi(header, body, footer)
    assert messages
    for text, entities in messages:
        assert units(text) <= MAX_MESSAGE_UTF16
        assert_valid_message(text, entities)
        if footer:
            assert text.endswith(render_markdown(footer)[0])


# bodies for the split property: text lines without fence-like runs (so a hard cut can never
# make or break a fence line) mixed with short fence lines
_plain_line = st.text(
    st.characters(blacklist_characters="`~\n\r", blacklist_categories=["Cs"]), max_size=300
)
_fence_line = st.builds(
    lambda marker, info: marker + info,
    st.sampled_from(["```", "~~~", "````", "  ```"]),
    st.sampled_from(["", "python", "js x"]),
)
split_bodies = st.lists(
    st.one_of(_plain_line, _plain_line, _fence_line, st.just("")), max_size=60
).map("\n".join)


def _content(text: str) -> str:
    """``text`` without fence lines and without whitespace."""
    kept = [line for line in text.split("\n") if not FENCE_LINE_RE.match(line)]
    return re.sub(r"\s", "", "".join(kept))


@given(split_bodies, st.integers(64, 1200))
def test_split_chunks_keep_the_body(body: str, max_chars: int) -> None:
    chunks = split_markdown_body(body, max_chars)
    assert chunks
    # nothing but fence lines (closed and reopened at the cuts) and whitespace is added/lost
    assert "".join(_content(c) for c in chunks) == _content(body)
    longest_fence = max(
        (len(line) for line in body.split("\n") if FENCE_LINE_RE.match(line)), default=0
    )
    for chunk in chunks:
        assert len(chunk) <= max_chars + 2 * (longest_fence + 1)
        if len(body) > max_chars:
            assert chunk.strip()


@given(odd_text(max_size=100))
def test_text_made_sendable_keeps_its_utf16_length(text: str) -> None:
    """U+FFFD for each lone surrogate or control character: encodable, same UTF-16 length
    (entity offsets computed before stay right), and valid text is left alone."""
    for clean in (replace_lone_surrogates(text), replace_control_chars(text)):
        assert units(clean) == units(text)
    sendable = replace_control_chars(replace_lone_surrogates(text))
    sendable.encode("utf-8")
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert replace_lone_surrogates(text) is text
