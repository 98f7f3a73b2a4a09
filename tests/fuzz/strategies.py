"""Hypothesis strategies shared by the fuzz tests: odd text, JSON values, and Telegram Bot API
update shapes (messages, captions, entities, replies, forwards, media, forum threads,
callback queries), well-formed or broken on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from tests.telegram.conftest import RecordingLogger

# -- text ------------------------------------------------------------------------------------

LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Everything ``str.splitlines`` splits on."""

_ODD_CHARS = st.sampled_from(
    [
        "\u200b",  # zero-width space
        "\u200d",  # zero-width joiner
        "\u202e",  # right-to-left override
        "\ufeff",  # BOM
        "\u0301",  # combining acute accent
        "\x00",
        "\t",
        "\r\n",
        "\u2028",
        "\u00a0",  # no-break space
        "😀",  # astral: two UTF-16 units
        "👍🏽",  # emoji + skin tone modifier
        "👨‍👩‍👧",  # ZWJ sequence
        "𝄞",
        "ß",  # upper() grows it: "SS"
        "ﬃ",  # upper() grows it: "FFI"
        "İ",  # lower() grows it
        "ع",
        "中",
    ]
)
_MARKDOWN_CHARS = st.sampled_from([*list("*_`~[]()<>#>-+=|\\!@/:\n "), "```", "~~~", "\n\n"])
_SURROGATES = st.characters(categories=["Cs"])
"""Lone UTF-16 surrogates: not valid Unicode, but JSON ``"\\ud800"`` escapes decode to them."""


def odd_text(*, min_size: int = 0, max_size: int = 60, surrogates: bool = True) -> Any:
    """Text mixing ordinary characters, Markdown syntax, astral and zero-width characters,
    line separators and (optionally) lone surrogates."""
    pieces = [st.characters(), _ODD_CHARS, _MARKDOWN_CHARS]
    if surrogates:
        pieces.append(_SURROGATES)
    return st.lists(st.one_of(*pieces), min_size=min_size, max_size=max_size).map("".join)


# -- JSON values -----------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**30, -(10**40)])
ints = st.one_of(st.integers(-(2**40), 2**40), HUGE_INTS)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON-ish value (numbers outside every integer type, NaN, odd strings included)."""

# -- Bot API shapes --------------------------------------------------------------------------

ids = st.one_of(st.integers(-(10**13), 10**13), HUGE_INTS)
small_ids = st.integers(1, 50)

users = st.fixed_dictionaries(
    {"id": ids, "is_bot": st.booleans(), "first_name": odd_text(max_size=10)},
    optional={"username": odd_text(max_size=10), "language_code": st.just("en")},
)
chats = st.fixed_dictionaries(
    {"id": ids, "type": st.sampled_from(["private", "group", "supergroup", "channel"])},
    optional={"is_forum": st.booleans(), "title": odd_text(max_size=10)},
)
ENTITY_TYPES = [
    "bold",
    "italic",
    "code",
    "pre",
    "text_link",
    "mention",
    "bot_command",
    "url",
    "custom_emoji",
    "blockquote",
    "not_a_type",
]
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(ENTITY_TYPES),
            "offset": st.integers(-5, 200),
            "length": st.integers(-5, 200),
        },
        optional={"url": odd_text(max_size=20), "language": odd_text(max_size=5)},
    ),
    max_size=4,
)
files = st.fixed_dictionaries(
    {"file_id": odd_text(min_size=1, max_size=10), "file_unique_id": odd_text(max_size=10)},
    optional={
        "file_size": st.one_of(ids, st.integers(0, 30 * 1024 * 1024)),
        "file_name": odd_text(max_size=20),
        "mime_type": st.sampled_from(["text/plain", "image/png", "audio/ogg", "video/mp4", ""]),
        "duration": st.integers(0, 10_000),
    },
)
photos = st.lists(files.map(lambda f: {**f, "width": 10, "height": 10}), min_size=0, max_size=3)
forward_fields = st.fixed_dictionaries(
    {},
    optional={
        "forward_origin": st.fixed_dictionaries(
            {"type": st.sampled_from(["user", "hidden_user", "chat", "channel"]), "date": ids}
        ),
        "forward_from": users,
        "forward_sender_name": odd_text(max_size=10),
        "forward_date": ids,
        "is_automatic_forward": st.booleans(),
    },
)


def messages(*, depth: int = 1) -> Any:
    """A Bot API ``message`` object: required fields always right, optional ones drawn."""
    optional: dict[str, Any] = {
        "from": users,
        "text": odd_text(),
        "caption": odd_text(),
        "entities": entities,
        "caption_entities": entities,
        "message_thread_id": st.one_of(small_ids, ids),
        "is_topic_message": st.booleans(),
        "voice": files,
        "document": files,
        "photo": photos,
        "video": files,
        "audio": files,
        "sticker": files,
        "media_group_id": st.one_of(odd_text(max_size=8), ids),
        "edit_date": ids,
    }
    if depth > 0:
        optional["reply_to_message"] = messages(depth=depth - 1)
    base = st.fixed_dictionaries(
        {"message_id": st.one_of(small_ids, ids), "chat": chats, "date": ids}, optional=optional
    )
    return st.tuples(base, forward_fields).map(lambda pair: {**pair[0], **pair[1]})


callback_queries = st.fixed_dictionaries(
    {"id": odd_text(min_size=1, max_size=10), "from": users, "chat_instance": odd_text(max_size=8)},
    optional={
        "message": messages(depth=0),
        "data": st.one_of(st.just("takopi:cancel"), odd_text(max_size=64)),
        "inline_message_id": odd_text(max_size=8),
    },
)


def well_formed_updates() -> Any:
    """An update the Bot API could send (``message``, ``callback_query`` or another kind)."""
    kinds = st.one_of(
        messages().map(lambda m: {"message": m}),
        callback_queries.map(lambda q: {"callback_query": q}),
        messages().map(lambda m: {"edited_message": m}),
        messages().map(lambda m: {"channel_post": m}),
        st.just({"my_chat_member": {"chat": {"id": 1, "type": "private"}}}),
    )
    return st.tuples(st.one_of(ids, st.integers(0, 10**6)), kinds).map(
        lambda pair: {"update_id": pair[0], **pair[1]}
    )


@st.composite
def corrupted(draw: st.DrawFn, value: Any, *, max_changes: int = 3) -> Any:
    """``value`` with up to ``max_changes`` nested fields deleted or replaced by garbage."""
    value = _deep_copy(value)
    for _ in range(draw(st.integers(0, max_changes))):
        paths = list(_paths(value))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _resolve(value, path)
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(json_values)
    return value


def updates() -> Any:
    """Well-formed updates, corrupted ones, and plain garbage."""
    return st.one_of(
        well_formed_updates(),
        well_formed_updates().flatmap(corrupted),
        json_values,
    )


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Any:
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _resolve(value: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    return parent, path[-1]


# -- log recording ---------------------------------------------------------------------------


@contextmanager
def recorded_log(module: ModuleType) -> Iterator[RecordingLogger]:
    """Swap ``module.log`` for a recorder while the block runs (hypothesis tests cannot use
    the function-scoped ``log_capture`` fixture: it would not be reset between examples)."""
    recorder = RecordingLogger()
    saved = module.log
    module.log = recorder
    try:
        yield recorder
    finally:
        module.log = saved
