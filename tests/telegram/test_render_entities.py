"""takopi's token renderer against the reference pipeline (markdown-it → HTML → sulguk), one
hand-picked case per construct; the deliberate differences; and no sulguk, html5lib or lxml
in the transport's processes."""

from __future__ import annotations

import pytest

from takopi.telegram.render import render_markdown
from tests.support.processes import fresh_python
from tests.support.sulguk_reference import sulguk_render, token_render

CASES = {
    "plain": "just text",
    "whitespace runs": "a \t b\n\n\n   c   ",
    "nbsp and unicode spaces stay": "a\xa0\xa0b\u3000c\u2028d",
    "escaped html characters": 'a < b && c > "d" &amp; &lt;tag&gt; &copy; &#x1F600;',
    "backslash escapes": "\\*not em\\* \\[x\\] \\`",
    "astral offsets": "😀😀 **after** 𝄞 `x` 👨‍👩‍👧 *y*",
    "emphasis": "*it* _it_ **b** __b__ ***bi*** ~~s~~",
    "nested emphasis": "**bold *it ~~s `c`~~* b** *a **b** c*",
    "inline code": "`a  b` `` a`b `` `<x>`",
    "soft break": "one\ntwo",
    "hard breaks": "one  \ntwo\\\nthree",
    "unicode space after a break": "one  \n\xa0two\n\u3000three",
    "heading levels": "# one\n## two\n### three\n#### four\n##### five\n###### six",
    "h1 upper-cased, growing": "# ß ﬃ straße *x* [l](http://a) ![i](http://b)",
    "setext headings": "Title\n=====\n\nSub\n---",
    "paragraphs": "p1\n\np2\n\n\np3",
    "fence with language": "```python\nprint(1)\n```",
    "fence language quirks": "```a\xa0b c\nx\n```\n\n```\xa0b\ny\n```\n\n~~~&lt;x&gt;\nz\n~~~\n\n```c&#12;d\n```",
    "fence keeps text": "```\n\n  two\n\tthree  \n\n```",
    "fence after a paragraph": "p\n\n```\n\n\nx\n```",
    "empty fence": "```\n```",
    "unclosed fence": "```sh\nrm -rf x",
    "indented code": "    code  x\n      more",
    "blockquote": "> quoted\n> more\n\n> two\n>\n> paras",
    "nested blockquote": "> a\n> > b\n> > > c",
    "bullets": "- a\n- b\n* c\n+ d",
    "bullet sign": "• a\n• b",
    "loose list": "- a\n\n- b\n\n  more",
    "nested lists": "- a\n  - b\n    - c\n  - d\n- e",
    "ordered": "1. one\n2. two\n3) three",
    "ordered start": "3. three\n4. four",
    "ordered zero and big": "0. zero\n\n123456789. big",
    "numbering after code": "1. a\n\n```\nx\n```\n\n2. b",
    "bullets under a number": "1. step\n- detail\n- more\n2. next",
    "empty items": "-\n- \n- a\n1.\n2. b",
    "heading in item": "- # h\n- ## h2\n  para",
    "code in item": "- ```\n  x\n  ```\n- a\n\n      code",
    "quote in item": "* a\n  > b\n* > c",
    "list in quote": "> - a\n>   > b\n>\n> 1. c",
    "rule": "a\n\n---\n\nb\n***\n_ _ _",
    "rule in item": "- a\n  ***\n- ---",
    "links": "[a](https://example.com/x) [b](foo/bar.md) [c](tg://user?id=1) [d](mailto:a@b.c)",
    "link titles and empty": '[t](http://h "title") [e]() [f](<>) [g](#frag)',
    "link with markup": "[**b** *i* `c`](http://h)",
    "autolinks": "<https://auto/x> <a@b.co> <tg://resolve?domain=x>",
    "autolink inside a link": "[<http://a>](http://b) and [**x <http://a> y**](http://b)",
    "many emphases around a nested autolink": "[****x **<http://a>** y****](http://b)",
    # html5lib reopens at most three identical emphases ("Noah's Ark")
    "four strong around a nested autolink": "[**a __b **c __d <http://a> e__ f** g__ h**](http://b)",
    "unsafe link schemes": "[x](javascript:alert(1)) [y](data:text/html,z) [z](file:///etc)",
    "images": "![alt](http://img/x.png) ![](http://img/y) ![alt]() ![]() ![*a* `b`](<>)",
    "image in link": "[![i](http://img)](http://link)",
    "image only item": "- ![]() b\n- ![]()\n- ![x]()",
    "blank lead in item": "-  &nbsp;**x**\n- \u3000*y*",
    "image splits a blank lead": "- &nbsp;![]()x\n- &nbsp;![]() ![]()y",
    "lone surrogate and control chars": "*a*\ud800 **red** \x1b[31m x\x00y\x0b",
    "form feed entity in text": "a&#12;b &#13; c",
    "trailing spaces": "text   \n\n- a   \n",
    "mixed document": (
        "# Plan\n\nSome *text* with `code`.\n\n1. first\n2. second\n   - sub\n\n"
        "> note\n\n```diff\n- a\n+ b\n```\n\n---\n\nDone: [link](https://x.y)"
    ),
}


@pytest.mark.parametrize("markdown", CASES.values(), ids=CASES.keys())
def test_same_text_and_entities_as_sulguk(markdown: str) -> None:
    assert token_render(markdown) == sulguk_render(markdown)


def test_known_outputs() -> None:
    """A few outputs spelled out, so a change in both pipelines would still show."""
    assert token_render("[**x <http://a> y**](http://b)") == (
        "x http://a y\n\n",
        [
            {"type": "bold", "offset": 0, "length": 2},
            {"type": "text_link", "url": "http://b", "offset": 0, "length": 2},
            {"type": "text_link", "url": "http://a", "offset": 2, "length": 8},
            {"type": "bold", "offset": 2, "length": 10},
        ],
    )
    assert token_render("```py\nx\n```") == (
        "x\n\n",
        [
            {"type": "code", "offset": 0, "length": 2},
            {"type": "pre", "offset": 0, "length": 2, "language": "py"},
        ],
    )
    assert render_markdown("- ![i](http://img)\n\n  ---")[0] == "• 🖼️i\n\xa0⎯⎯⎯⎯⎯⎯⎯⎯⎯⎯"
    assert render_markdown("# ß\n\n1. a\n2. b")[0] == "SS\n1. a\n2. b"  # sulguk: no empty line


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        # lxml refuses a form feed in an attribute, so sulguk raised and render.py used to
        # send the Markdown source: now it is a space, as html5lib makes it in text
        (
            "![a&#12;b](http://x)",
            ("🖼️a b", [{"type": "text_link", "url": "http://x", "offset": 0, "length": 6}]),
        ),
        (
            '[a](http://x "t&#12;")',
            ("a", [{"type": "text_link", "url": "http://x", "offset": 0, "length": 1}]),
        ),
    ],
)
def test_form_feed_in_an_attribute_is_a_space(
    markdown: str, expected: tuple[str, list[dict]]
) -> None:
    from sulguk import transform_html

    from takopi.telegram.render import _md

    with pytest.raises(ValueError, match="XML compatible"):
        transform_html(_md.render(markdown))  # the reference pipeline's failure
    assert render_markdown(markdown) == expected
    assert sulguk_render(markdown) == token_render(markdown)  # the oracle makes it a space


def test_the_transport_imports_neither_sulguk_nor_html5lib_nor_lxml() -> None:
    """Every takopi module, the transport's included, imported in a fresh interpreter, and a
    message rendered: none of the reference's HTML stack is loaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import takopi\n"
        "for info in pkgutil.walk_packages(takopi.__path__, 'takopi.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "from takopi.telegram.render import render_markdown\n"
        "print(render_markdown('# t\\n\\n- *x* `y`')[0].replace('\\n', '|'))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sulguk', 'html5lib', 'lxml'}))\n"
        "print('takopi.telegram.loop' in sys.modules)\n"
    )
    assert fresh_python(code, timeout=90) == ["T|• x y", "[]", "True"]
