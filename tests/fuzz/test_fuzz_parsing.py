"""Property-based fuzzing of Telegram update parsing and de-duplication
(:mod:`takopi.telegram.parsing`, :mod:`takopi.telegram.types`)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from takopi.telegram.parsing import FORWARD_FIELDS, UpdateDeduper, parse_update
from takopi.telegram.types import TelegramCallbackQuery, TelegramIncomingMessage
from takopi.telegram.unicode import replace_lone_surrogates, scrub_surrogates
from tests.fuzz.strategies import (
    callback_queries,
    ids,
    messages,
    odd_text,
    updates,
    well_formed_updates,
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt(value: Any, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def assert_well_formed(parsed: Any) -> None:
    """Every field has the type :mod:`takopi.telegram.types` declares."""
    assert parsed is None or isinstance(parsed, TelegramIncomingMessage | TelegramCallbackQuery)
    if isinstance(parsed, TelegramIncomingMessage):
        assert _is_int(parsed.chat_id) and _is_int(parsed.message_id)
        assert isinstance(parsed.text, str)
        for value in (parsed.update_id, parsed.sender_id, parsed.date, parsed.thread_id):
            assert _opt(value, int)
        assert _opt(parsed.reply_to_message_id, int)
        for value in (
            parsed.reply_to_text,
            parsed.reply_to_username,
            parsed.chat_type,
            parsed.media_group_id,
        ):
            assert _opt(value, str)
        assert parsed.reply_to_is_bot in (None, True, False)
        for flag in (
            parsed.sender_is_bot,
            parsed.is_forum,
            parsed.is_topic_message,
            parsed.is_forward,
            parsed.has_voice,
            parsed.has_document,
        ):
            assert flag in (True, False)
        assert isinstance(parsed.raw, dict)
        assert parsed.is_private in (True, False)
    elif isinstance(parsed, TelegramCallbackQuery):
        assert isinstance(parsed.callback_query_id, str) and parsed.callback_query_id
        for value in (parsed.chat_id, parsed.message_id, parsed.update_id, parsed.sender_id):
            assert _opt(value, int)
        assert _opt(parsed.thread_id, int)
        assert _opt(parsed.data, str)


@given(updates())
def test_parsing_never_raises_and_is_well_formed(update: Any) -> None:
    assert_well_formed(parse_update(update))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@given(updates())
def test_parsed_strings_are_valid_unicode(update: Any) -> None:
    """Lone surrogates never get past parsing (they cannot be sent, written or encoded)."""
    parsed = parse_update(update)
    if parsed is not None:
        fields = [getattr(parsed, name) for name in parsed.__slots__]
        for text in _strings(fields):
            text.encode("utf-8")


@given(well_formed_updates())
def test_parsed_fields_agree_with_the_update(update: dict[str, Any]) -> None:
    parsed = parse_update(update)
    assert_well_formed(parsed)
    # what is compared: the update with lone surrogates made U+FFFD (see the property above)
    update = scrub_surrogates(update)
    if "message" in update:
        raw = update["message"]
        text = raw.get("text") if isinstance(raw.get("text"), str) else raw.get("caption")
        has_voice = isinstance(raw.get("voice"), dict)
        has_media = any(k in raw for k in ("document", "photo", "video"))
        if text is None and not has_voice and not has_media:
            assert parsed is None
            return
        assert isinstance(parsed, TelegramIncomingMessage)
        assert parsed.update_id == update["update_id"]
        assert (parsed.chat_id, parsed.message_id) == (raw["chat"]["id"], raw["message_id"])
        assert parsed.text == (text or "")
        assert parsed.chat_type == raw["chat"]["type"]
        assert parsed.sender_id == (raw["from"]["id"] if "from" in raw else None)
        assert parsed.thread_id == raw.get("message_thread_id")
        assert parsed.has_voice == has_voice
        assert parsed.has_document == has_media
        assert parsed.is_forward == any(raw.get(f) for f in FORWARD_FIELDS)
        media_group = raw.get("media_group_id")
        assert parsed.media_group_id == (None if media_group is None else str(media_group))
        reply = raw.get("reply_to_message")
        if reply is None:
            assert parsed.reply_to_message_id is None and parsed.reply_to_text is None
        elif raw.get("message_thread_id") == reply["message_id"]:
            # the implicit reply to a forum topic's root message is not a reply
            assert parsed.reply_to_message_id is None
            assert parsed.reply_to_text is None and parsed.reply_to_is_bot is None
        else:
            assert parsed.reply_to_message_id == reply["message_id"]
            reply_text = reply.get("text") or reply.get("caption")
            assert parsed.reply_to_text == (reply_text if isinstance(reply_text, str) else None)
            if "from" in reply:
                assert parsed.reply_to_is_bot == reply["from"]["is_bot"]
    elif "callback_query" in update:
        raw = update["callback_query"]
        assert isinstance(parsed, TelegramCallbackQuery)
        assert parsed.callback_query_id == raw["id"]
        assert parsed.data == raw.get("data")
        assert parsed.sender_id == raw["from"]["id"]
        message = raw.get("message")
        assert parsed.chat_id == (message["chat"]["id"] if message else None)
        assert parsed.message_id == (message["message_id"] if message else None)
        assert parsed.thread_id == (message.get("message_thread_id") if message else None)
    else:
        # edited messages, channel posts and other kinds are not handled
        assert parsed is None


@given(
    messages(),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.one_of(st.none(), odd_text(max_size=10)),
)
def test_text_messages_in_topics_are_never_dropped(
    raw: dict[str, Any], update_id: int, thread_id: int, text: str | None
) -> None:
    """A topic message whose reply points at the topic root keeps its text and thread."""
    raw = {
        **raw,
        "text": text or "hi",
        "message_thread_id": thread_id,
        "is_topic_message": True,
        "reply_to_message": {"message_id": thread_id, "chat": raw["chat"], "date": 1},
    }
    parsed = parse_update({"update_id": update_id, "message": raw})
    assert isinstance(parsed, TelegramIncomingMessage)
    assert parsed.thread_id == thread_id and parsed.is_topic_message
    assert parsed.reply_to_message_id is None
    assert parsed.text == replace_lone_surrogates(text or "hi")


def _message(update_id: int | None, chat_id: int, message_id: int) -> TelegramIncomingMessage:
    return TelegramIncomingMessage(
        chat_id=chat_id, message_id=message_id, text="x", update_id=update_id
    )


deliveries = st.lists(
    st.one_of(
        st.builds(
            _message,
            st.one_of(st.none(), st.integers(0, 40)),
            st.integers(-3, 3),
            st.integers(0, 12),
        ),
        st.builds(
            lambda update_id, query_id: TelegramCallbackQuery(
                callback_query_id=query_id,
                chat_id=1,
                message_id=1,
                data=None,
                update_id=update_id,
            ),
            st.one_of(st.none(), st.integers(0, 40)),
            st.sampled_from(["a", "b", "c"]),
        ),
    ),
    max_size=120,
)


@given(deliveries, st.integers(1, 16), st.integers(1, 16))
def test_deduper_bounds_and_redeliveries(
    stream: list[Any], updates_limit: int, messages_limit: int
) -> None:
    deduper = UpdateDeduper(updates_limit=updates_limit, messages_limit=messages_limit)
    for fresh_id, update in enumerate(stream, start=10_000):
        first = deduper.is_new(update)
        # a re-delivery right after the first delivery is never new
        assert not deduper.is_new(update)
        if first and isinstance(update, TelegramIncomingMessage):
            # nor is the same message under a fresh update id
            assert not deduper.is_new(_message(fresh_id, update.chat_id, update.message_id))
        assert len(deduper._updates) <= updates_limit
        assert len(deduper._messages) <= messages_limit


@given(st.lists(st.tuples(ids, ids), unique=True, max_size=60), st.integers(1, 8))
def test_deduper_accepts_every_fresh_message(pairs: list[tuple[int, int]], limit: int) -> None:
    """Distinct messages with distinct update ids are all new, whatever the bounds."""
    deduper = UpdateDeduper(updates_limit=limit, messages_limit=limit)
    for update_id, (chat_id, message_id) in enumerate(pairs):
        assert deduper.is_new(_message(update_id, chat_id, message_id))


@given(callback_queries.map(lambda q: {"update_id": 1, "callback_query": q}))
def test_callback_queries_parse(update: dict[str, Any]) -> None:
    parsed = parse_update(update)
    assert isinstance(parsed, TelegramCallbackQuery)
    assert_well_formed(parsed)
