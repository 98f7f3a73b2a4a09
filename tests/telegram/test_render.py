"""Markdown → Telegram text + entities, trimming and splitting."""

from __future__ import annotations

from takopi.telegram.render import (
    is_safe_link,
    keep_list_numbering,
    prepare_telegram,
    prepare_telegram_multi,
    render_markdown,
    split_markdown_body,
    utf16_len,
)


def _spans(text: str, entities: list[dict]) -> list[tuple[str, str]]:
    data = text.encode("utf-16-le")
    return [
        (e["type"], data[e["offset"] * 2 : (e["offset"] + e["length"]) * 2].decode("utf-16-le"))
        for e in entities
    ]


def test_inline_styles_become_entities():
    text, entities = render_markdown("Some *it* and **bold** `code` ~~gone~~")
    assert text == "Some it and bold code gone"
    assert _spans(text, entities) == [
        ("italic", "it"),
        ("bold", "bold"),
        ("code", "code"),
        ("strikethrough", "gone"),
    ]


def test_offsets_are_utf16_units():
    text, entities = render_markdown("😀😀 **after** 𝄞 `x`")
    assert text == "😀😀 after 𝄞 x"
    assert entities[0] == {"type": "bold", "offset": 5, "length": 5}
    assert _spans(text, entities) == [("bold", "after"), ("code", "x")]


def test_only_safe_links_become_text_links():
    text, entities = render_markdown(
        "[a](https://example.com/x) [b](foo/bar.md) [c](tg://user?id=1) [d](mailto:a@b.c)"
    )
    assert text == "a b c d"
    links = [(e["type"], e.get("url")) for e in entities]
    assert links == [("text_link", "https://example.com/x"), ("text_link", "tg://user?id=1")]
    assert is_safe_link("http://h") and not is_safe_link("http://") and not is_safe_link("/abs")


def test_headings_code_blocks_and_quotes():
    """sulguk's (the reference's) styles: upper-cased bold+underline headings, code blocks
    as ``code`` + ``pre`` (trailing newline included), soft breaks read as spaces."""
    md = "# Title\n\n```python\nprint(1)\n```\n\n> quoted\n> more"
    text, entities = render_markdown(md)
    assert text == "TITLE\n\nprint(1)\n\nquoted more"
    spans = _spans(text, entities)
    assert ("bold", "TITLE") in spans and ("underline", "TITLE") in spans
    assert ("code", "print(1)\n") in spans
    pre = next(e for e in entities if e["type"] == "pre")
    assert pre["language"] == "python"
    assert ("blockquote", "quoted more") in spans


def test_soft_line_breaks_become_spaces_and_hard_breaks_stay():
    assert render_markdown("error:\nmultiple project directives")[0] == (
        "error: multiple project directives"
    )
    assert render_markdown("one  \ntwo")[0] == "one\ntwo"


def test_lists_are_numbered_and_bullets_normalised():
    text, _ = render_markdown("1. one\n2. two\n\n• a\n• b")
    assert text == "1. one\n2. two\n• a\n• b"
    text, _ = render_markdown("3. three\n4. four")
    assert text.startswith("3. three\n4. four")
    # a numbered list going on after a code block keeps its numbers
    assert render_markdown("1. a\n\n```\nx\n```\n\n2. b")[0].endswith("2. b")
    # nested bullets are indented with a non-breaking space
    assert render_markdown("- a\n  - b")[0] == "• a\n\xa0• b"


def test_unordered_items_after_an_ordered_item_keep_the_numbering():
    md = "1. step\n- detail\n- more\n2. next\n\n```\n1. x\n- y\n```"
    assert (
        keep_list_numbering(md) == "1. step\n   - detail\n   - more\n2. next\n\n```\n1. x\n- y\n```"
    )
    text, _ = render_markdown(md)
    assert text.startswith("1. step\n\xa0• detail\n\xa0• more\n2. next")


def test_trim_keeps_header_and_footer_whole():
    body = "x" * 5000
    footer = "`ctx: proj @main`  \n`codex resume abc`"
    text, entities = prepare_telegram("done · codex · 3s", body, footer)
    assert text.startswith("done · codex · 3s\n\n")
    assert text.endswith("ctx: proj @main\ncodex resume abc")
    assert "x" * 3499 + "…" in text
    assert "x" * 3500 not in text
    assert _spans(text, entities)[-2:] == [
        ("code", "ctx: proj @main"),
        ("code", "codex resume abc"),
    ]


def test_trim_respects_the_utf16_limit_for_astral_text():
    body = "😀" * 3400  # 3400 chars but 6800 UTF-16 units
    text, _ = prepare_telegram("done", body, "`codex resume abc`")
    assert utf16_len(text) <= 4096
    assert text.endswith("codex resume abc")


def test_unclosed_fence_in_body_never_swallows_the_footer():
    text, entities = prepare_telegram("done", "```\ncode without end", "`codex resume abc`")
    assert ("code", "codex resume abc") in _spans(text, entities)


def test_split_reopens_fences_and_numbers_chunks():
    code = "```python\n" + "\n".join(f"line_{i} = {i}" for i in range(400)) + "\n```"
    body = "intro paragraph\n\n" + code + "\n\nafter the code"
    chunks = split_markdown_body(body, 1000)
    assert len(chunks) > 2
    for chunk in chunks:
        assert len(chunk) <= 1000 + 30
        fences = [line for line in chunk.split("\n") if line.startswith("```")]
        assert len(fences) % 2 == 0, chunk[:80]
    assert chunks[1].startswith("```python\n")
    assert "".join(chunks).count("line_399") == 1
    messages = prepare_telegram_multi(
        "done · codex · 1s", body, "`codex resume t1`", max_body_chars=1000
    )
    total = len(messages)
    assert total == len(chunks)
    for i, (text, entities) in enumerate(messages, start=1):
        first_line = text.split("\n", 1)[0]
        if i == 1:
            assert first_line == "done · codex · 1s"
        else:
            assert first_line == f"done · codex · 1s · continued ({i}/{total})"
        assert text.endswith("codex resume t1")
        assert ("code", "codex resume t1") in _spans(text, entities)


def test_split_hard_cuts_a_single_huge_line():
    chunks = split_markdown_body("y" * 9000, 3500)
    assert [len(c) for c in chunks] == [3500, 3500, 2000]


def test_short_bodies_are_not_split():
    assert len(prepare_telegram_multi("h", "short", "f")) == 1
