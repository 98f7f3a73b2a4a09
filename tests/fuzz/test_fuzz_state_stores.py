"""Property-based fuzzing of the Telegram transport's JSON state files (chat preferences,
chat sessions, forum topics): whatever is on disk — random bytes, a truncated file, valid
JSON of the wrong shape — the store never raises, answers with values of the documented
types, keeps an unreadable file aside as ``<file>.corrupt`` with a warning, and goes on
working (what it is told to store, it stores)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import example, given
from hypothesis import strategies as st

from takopi.context import RunContext
from takopi.model import ResumeToken
from takopi.telegram import chat_prefs, chat_sessions, topic_state
from takopi.telegram.chat_prefs import ChatPrefsStore
from takopi.telegram.chat_sessions import ChatSessionStore
from takopi.telegram.topic_state import TopicStateStore
from takopi.utils import json_state
from tests.fuzz.strategies import corrupted, json_values, recorded_log

_names = st.sampled_from(["codex", "claude", "api", "main", "x"])
_opt_str = st.one_of(st.none(), _names)
_overrides = st.dictionaries(
    _names, st.fixed_dictionaries({"model": _opt_str, "reasoning": _opt_str}), max_size=2
)
valid_prefs = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "chats": st.dictionaries(
            st.sampled_from(["1", "-100", "7"]),
            st.fixed_dictionaries(
                {
                    "default_engine": _opt_str,
                    "trigger_mode": st.sampled_from([None, "mentions", "all"]),
                    "context_project": _opt_str,
                    "context_branch": _opt_str,
                    "engine_overrides": _overrides,
                }
            ),
            max_size=3,
        ),
    }
)
_sessions = st.dictionaries(_names, st.fixed_dictionaries({"resume": _names}), max_size=2)
valid_sessions = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "cwd": st.one_of(st.none(), st.just("/srv")),
        "chats": st.dictionaries(
            st.sampled_from(["1:chat", "-100:5", "-100:chat"]),
            st.fixed_dictionaries({"sessions": _sessions}),
            max_size=3,
        ),
    }
)
valid_topics = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "threads": st.dictionaries(
            st.sampled_from(["-100:1", "-100:2", "-100:x", "5:3"]),
            st.fixed_dictionaries(
                {
                    "context": st.one_of(
                        st.none(), st.fixed_dictionaries({"project": _opt_str, "branch": _opt_str})
                    ),
                    "sessions": _sessions,
                    "topic_title": _opt_str,
                    "default_engine": _opt_str,
                    "trigger_mode": st.sampled_from([None, "mentions"]),
                    "engine_overrides": _overrides,
                }
            ),
            max_size=3,
        ),
    }
)


def contents(valid: Any) -> Any:
    """File contents: a valid state, the same with wrong-shaped fields, truncated, or junk."""
    as_bytes = st.one_of(
        valid.map(lambda v: json.dumps(v).encode()),
        valid.flatmap(corrupted).map(lambda v: json.dumps(v).encode()),
        st.tuples(valid.map(lambda v: json.dumps(v, indent=2).encode()), st.floats(0, 1)).map(
            lambda pair: pair[0][: int(len(pair[0]) * pair[1])]
        ),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
    )
    return as_bytes


def _loadable(raw: bytes) -> bool:
    """Whether ``raw`` is a JSON object of version 1 (what the stores keep as is)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("version") == 1


def _opt(value: Any) -> bool:
    return value is None or isinstance(value, str)


class _Logs:
    """Warnings of the store modules and the state-file helper, recorded."""

    def __init__(self) -> None:
        self._contexts = [
            recorded_log(module) for module in (json_state, chat_prefs, chat_sessions, topic_state)
        ]

    def __enter__(self) -> list[Any]:
        recorders = [ctx.__enter__() for ctx in self._contexts]
        return recorders

    def __exit__(self, *exc: object) -> None:
        for ctx in self._contexts:
            ctx.__exit__(*exc)


def _check_file(path: Path, raw: bytes, recorders: list[Any]) -> None:
    backup = path.with_name(path.name + ".corrupt")
    if not _loadable(raw):
        assert backup.read_bytes() == raw
        assert any(level == "warning" for r in recorders for level, _e, _f in r.records)
    # whatever the store wrote is a valid state file
    if path.exists():
        assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1


def _run(path: Path, raw: bytes, body: Any) -> None:
    path.write_bytes(raw)
    with _Logs() as recorders:
        anyio.run(body, backend="asyncio")
        _check_file(path, raw, recorders)


@given(contents(valid_prefs))
# found by these tests: a field of the wrong type (AttributeError), bytes that are not UTF-8
# (UnicodeDecodeError); and nesting too deep for the JSON parser (RecursionError)
@example(b'{"version": 1, "chats": {"1": {"engine_overrides": [1]}}}')
@example(b'{"version": 1, "chats": {"1": {"default_engine": 5}}}')
@example(b"\x80")
@example(b"[" * 100_000)
def test_chat_prefs_store_survives_any_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / chat_prefs.STATE_FILENAME

        async def body() -> None:
            store = ChatPrefsStore(path)
            for chat_id in (1, -100, 7):
                for key in ("default_engine", "trigger_mode", "context_project"):
                    assert _opt(await store.get(chat_id, key))
                ctx = await store.get_context(chat_id)
                assert ctx is None or (_opt(ctx.project) and _opt(ctx.branch))
                for engine in ("codex", "claude"):
                    for field in ("model", "reasoning"):
                        assert _opt(await store.get_override(chat_id, engine, field))
            await store.set(1, "default_engine", "claude")
            await store.set_context(-100, RunContext(project="api", branch="b"))
            await store.set_override(7, "codex", "model", "o3")
            fresh = ChatPrefsStore(path)
            assert await fresh.get(1, "default_engine") == "claude"
            assert await fresh.get_context(-100) == RunContext(project="api", branch="b")
            assert await fresh.get_override(7, "codex", "model") == "o3"

        _run(path, raw, body)


@given(contents(valid_sessions))
@example(b"\x80")
@example(b'{"version": 1, "chats": {"1:chat": {"sessions": {"codex": "t"}}}}')
def test_chat_session_store_survives_any_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / chat_sessions.STATE_FILENAME

        async def body() -> None:
            store = ChatSessionStore(path)
            for key in ("1:chat", "-100:5", "-100:chat"):
                assert (await store.has(key)) in (True, False)
                for engine in ("codex", "claude"):
                    token = await store.get(key, engine)
                    assert token is None or (isinstance(token.value, str) and token.value)
            await store.sync_cwd("/srv")
            await store.set("1:chat", ResumeToken(engine="codex", value="t1"))
            await store.clear("-100:5")
            fresh = ChatSessionStore(path)
            assert await fresh.get("1:chat", "codex") == ResumeToken(engine="codex", value="t1")
            assert not await fresh.has("-100:5")

        _run(path, raw, body)


@given(contents(valid_topics))
@example(b"\x80")
# found by this test: a "\ud800" escape in the file made every later save fail
@example(b'{"version": 1, "threads": {"-100:1": {"sessions": {"codex": {"\\ud800": null}}}}}')
@example(b'{"version": 1, "threads": {"-100:1": {"context": "api"}}}')
def test_topic_store_survives_any_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / topic_state.STATE_FILENAME

        async def body() -> None:
            store = TopicStateStore(path)
            for key in ("-100:1", "-100:2", "-100:x", "5:3"):
                for field in ("topic_title", "default_engine", "trigger_mode"):
                    assert _opt(await store.get(key, field))
                ctx = await store.get_context(key)
                assert ctx is None or (_opt(ctx.project) and _opt(ctx.branch))
                engines = await store.session_engines(key)
                assert all(isinstance(e, str) for e in engines)
                for engine in ("codex", "claude"):
                    token = await store.get_session(key, engine)
                    assert token is None or (isinstance(token.value, str) and token.value)
                    assert _opt(await store.get_override(key, engine, "model"))
            bound = await store.find_bound(-100, RunContext(project="api", branch=None))
            assert all(isinstance(t, int) for t in bound)
            await store.set_context("-100:1", RunContext(project="api"), title="t")
            await store.set_session("-100:2", ResumeToken(engine="codex", value="t2"))
            await store.set_override("5:3", "claude", "reasoning", "high")
            await store.clear_sessions("-100:x")
            await store.delete("-100:x")
            fresh = TopicStateStore(path)
            assert await fresh.get_context("-100:1") == RunContext(project="api")
            assert 1 in await fresh.find_bound(-100, RunContext(project="api"))
            assert await fresh.get_session("-100:2", "codex") == ResumeToken(
                engine="codex", value="t2"
            )
            assert await fresh.get_override("5:3", "claude", "reasoning") == "high"

        _run(path, raw, body)


def test_a_failed_save_loses_nothing(tmp_path: Path) -> None:
    """A write that fails (here ``<file>.tmp`` cannot be created, as on a full disk) is
    logged; the change stays in memory and the next save writes everything."""
    path = tmp_path / chat_prefs.STATE_FILENAME
    blocker = path.with_name(path.name + ".tmp")

    async def body() -> None:
        store = ChatPrefsStore(path)
        await store.set(1, "default_engine", "codex")
        blocker.mkdir()  # open(<file>.tmp, "wb") now fails
        await store.set(2, "trigger_mode", "mentions")
        assert json.loads(path.read_text())["chats"].keys() == {"1"}
        assert await store.get(2, "trigger_mode") == "mentions"
        blocker.rmdir()
        await store.set(3, "context_project", "api")
        saved = json.loads(path.read_text())["chats"]
        assert saved.keys() == {"1", "2", "3"}

    with _Logs() as recorders:
        anyio.run(body, backend="asyncio")
    events = [event for r in recorders for _level, event, _fields in r.records]
    assert "telegram.chat_prefs.save_failed" in events
