"""Update parsing, de-duplication, command parsing, coalescing, state stores, file helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from takopi.model import ResumeToken
from takopi.telegram.chat_sessions import ChatSessionStore, chat_session_key
from takopi.telegram.coalesce import ForwardCoalescer, format_forwarded_prompt
from takopi.telegram.commands import build_command_menu, parse_command, split_command_args
from takopi.telegram.files import (
    ZipTooLargeError,
    default_upload_name,
    deny_reason,
    file_usage,
    format_bytes,
    normalize_relative_path,
    parse_file_command,
    parse_file_prompt,
    resolve_path_within_root,
    zip_directory,
)
from takopi.telegram.parsing import UpdateDeduper, parse_update
from takopi.telegram.state_store import JsonStateStore
from takopi.telegram.types import TelegramCallbackQuery, TelegramIncomingMessage


def _msg(**extra):
    base = {"message_id": 5, "chat": {"id": 10, "type": "private"}, "from": {"id": 10}, "date": 1}
    base.update(extra)
    return {"update_id": 1, "message": base}


def test_text_caption_and_reply_fields():
    msg = parse_update(
        _msg(
            text="hi",
            reply_to_message={
                "message_id": 3,
                "text": "prev",
                "from": {"id": 9, "is_bot": True, "username": "b"},
            },
        )
    )
    assert isinstance(msg, TelegramIncomingMessage)
    assert (msg.text, msg.reply_to_message_id, msg.reply_to_text, msg.reply_to_is_bot) == (
        "hi",
        3,
        "prev",
        True,
    )
    cap = parse_update(_msg(caption="look", document={"file_id": "f"}))
    assert cap.text == "look" and cap.has_document


def test_implicit_topic_root_reply_is_not_a_reply():
    msg = parse_update(
        _msg(
            text="hi",
            message_thread_id=7,
            is_topic_message=True,
            reply_to_message={"message_id": 7},
        )
    )
    assert msg.thread_id == 7 and msg.reply_to_message_id is None and msg.reply_to_text is None
    real = parse_update(
        _msg(text="hi", message_thread_id=7, reply_to_message={"message_id": 8, "text": "t"})
    )
    assert real.reply_to_message_id == 8


def test_forwards_are_detected():
    assert parse_update(_msg(text="x", forward_origin={"type": "hidden_user"})).is_forward
    assert parse_update(_msg(text="x", forward_sender_name="someone")).is_forward
    assert not parse_update(_msg(text="x")).is_forward


def test_irrelevant_and_malformed_updates():
    assert parse_update(_msg()) is None  # no text, caption, voice or document
    assert parse_update({"update_id": 2, "edited_message": {}}) is None
    for bad in (
        [1],
        {"message": 1},
        {"message": {"message_id": 1, "chat": {"id": "x"}}},
        {"callback_query": {"id": ""}},
    ):
        assert parse_update(bad) is None


def test_callback_query():
    cb = parse_update(
        {
            "update_id": 3,
            "callback_query": {
                "id": "q",
                "from": {"id": 4},
                "data": "takopi:cancel",
                "message": {"message_id": 9, "chat": {"id": 10}},
            },
        }
    )
    assert isinstance(cb, TelegramCallbackQuery)
    assert (cb.chat_id, cb.message_id, cb.data, cb.sender_id) == (10, 9, "takopi:cancel", 4)


def test_deduper_bounds_and_keys():
    dedupe = UpdateDeduper(updates_limit=2, messages_limit=2)
    a = parse_update({**_msg(text="a"), "update_id": 1})
    assert dedupe.is_new(a) and not dedupe.is_new(a)
    b = parse_update({"update_id": 2, "message": {**_msg(text="b")["message"], "message_id": 6}})
    c = parse_update({"update_id": 3, "message": {**_msg(text="c")["message"], "message_id": 7}})
    assert dedupe.is_new(b) and dedupe.is_new(c)
    # update 1 and message 5 were evicted (FIFO), so the same update is new again
    assert dedupe.is_new(a)


def test_parse_command():
    assert parse_command("/Cancel@takopi_bot now").name == "cancel"
    cmd = parse_command("/run  a b\nmore lines")
    assert cmd.name == "run" and cmd.args_text == "a b\nmore lines"
    assert parse_command("not a command") is None
    assert parse_command("/") is None
    assert split_command_args('a "b c"') == ("a", "b c")
    assert split_command_args('a "b c') == ("a", '"b', "c")


def test_command_menu_order_and_cap():
    menu = build_command_menu(
        engines=["claude", "codex"],
        projects=["web", "happy-gadgets"],
        plugin_commands=[("run", None), ("cron", "schedule runs")],
        builtins=[("new", "start a new thread"), ("cancel", "cancel run")],
    )
    assert [m["command"] for m in menu] == [
        "claude",
        "codex",
        "web",
        "run",
        "cron",
        "new",
        "cancel",
    ]
    assert menu[3]["description"] == "command: run"
    big = build_command_menu(
        engines=[f"e{i}" for i in range(150)],
        projects=[],
        plugin_commands=[],
        builtins=[("cancel", "cancel run")],
    )
    assert len(big) == 100 and big[-1]["command"] == "cancel"


def test_forwarded_prompt_format():
    p = TelegramIncomingMessage(chat_id=1, message_id=1, text="do it")
    f2 = TelegramIncomingMessage(chat_id=1, message_id=3, text="second")
    f1 = TelegramIncomingMessage(chat_id=1, message_id=2, text="first")
    assert format_forwarded_prompt(p, [f2, f1]) == "do it\n\nfirst\n\nsecond"


@pytest.mark.anyio
async def test_coalescer_new_prompt_inherits_forwards_and_cancel():
    flushed: list[tuple[str, list[str]]] = []

    async def on_flush(prompt, forwards):
        flushed.append((prompt.text, [f.text for f in forwards]))

    async with anyio.create_task_group() as tg:
        co = ForwardCoalescer(delay_s=0.2, task_group=tg, on_flush=on_flush)

        def mk(mid, text):
            return TelegramIncomingMessage(chat_id=1, message_id=mid, text=text, sender_id=2)

        assert not co.attach_forward(mk(1, "orphan"))
        co.submit(mk(2, "first prompt"))
        assert co.attach_forward(mk(3, "fwd"))
        co.submit(mk(4, "second prompt"))
        co.submit(TelegramIncomingMessage(chat_id=1, message_id=9, text="other user", sender_id=3))
        assert co.cancel(1, None, 3)
    assert flushed == [("second prompt", ["fwd"])]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_chat_sessions_store_roundtrip_and_cwd_wipe(tmp_path: Path):
    path = tmp_path / "telegram_chat_sessions_state.json"
    store = ChatSessionStore(path)
    key = chat_session_key(10, 5, is_private=False)
    assert key == "10:5" and chat_session_key(10, 5, is_private=True) == "10:chat"
    await store.sync_cwd("/a")
    await store.set(key, ResumeToken(engine="codex", value="t1"))
    data = json.loads(path.read_text())
    assert data == {
        "version": 1,
        "cwd": "/a",
        "chats": {"10:5": {"sessions": {"codex": {"resume": "t1"}}}},
    }
    # external edits are picked up
    data["chats"]["10:5"]["sessions"]["codex"]["resume"] = "t2"
    path.write_text(json.dumps(data))
    other = ChatSessionStore(path)
    assert (await other.get(key, "codex")).value == "t2"
    assert await other.sync_cwd("/b") is True
    assert await other.get(key, "codex") is None


@pytest.mark.anyio
async def test_generic_store_tolerates_wrong_version(tmp_path: Path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 99, "x": 1}))
    store: JsonStateStore[dict] = JsonStateStore(
        path, version=1, state_type=dict, state_factory=lambda: {"items": []}
    )
    async with store._lock:
        store._reload_locked_if_needed()
        assert store._state == {"items": []}
        store._state["items"].append(1)
        store._save_locked()
    assert json.loads(path.read_text()) == {"items": [1], "version": 1}
    assert (tmp_path / "s.json.corrupt").exists()


def test_file_helpers(tmp_path: Path):
    assert normalize_relative_path("./a/./b.txt") == Path("a/b.txt")
    for bad in ("", "   ", "./", "~/x", "/etc/passwd", "a/../b", ".git/config"):
        assert normalize_relative_path(bad) is None
    assert resolve_path_within_root(tmp_path, Path("../escape")) is None
    assert resolve_path_within_root(tmp_path, Path("in/side")) == tmp_path.resolve() / "in/side"
    assert deny_reason("x/.git/y", []) == ".git/**"
    assert deny_reason(Path("secrets/key.pem"), ["**/*.pem"]) == "**/*.pem"
    assert deny_reason(".ssh/id_rsa", [".ssh/**"]) == ".ssh/**"
    assert deny_reason("src/main.py", ["*.pem"]) is None
    assert [format_bytes(n) for n in (0, 512, 1536, 20480, 5 * 1024**3)] == [
        "0 b",
        "512 b",
        "1.5 kb",
        "20 kb",
        "5 gb",
    ]
    assert default_upload_name("", "files/report.txt") == "report.txt"
    assert default_upload_name(None, None) == "upload.bin"
    assert parse_file_command("nope arg") == (None, "arg", file_usage())
    assert parse_file_command("PUT docs/x.pdf") == ("put", "docs/x.pdf", None)
    assert parse_file_prompt("--wat", allow_empty=False) == (None, False, "unknown flag: --wat")
    assert parse_file_prompt("", allow_empty=False) == (None, False, "missing path")
    assert parse_file_prompt("--force note.txt") == ("note.txt", True, None)


def test_zip_directory_skips_symlinks_denied_paths_and_limits_size(tmp_path: Path):
    import io
    import zipfile

    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "safe.txt").write_text("ok")
    (root / "dir" / "key.pem").write_text("secret")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "dir" / "leak.txt").symlink_to(tmp_path / "outside.txt")
    payload = zip_directory(root, Path("dir"), deny_globs=("*.pem",))
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        assert archive.namelist() == ["dir/safe.txt"]
    (root / "dir" / "big.bin").write_bytes(os.urandom(4096))
    with pytest.raises(ZipTooLargeError):
        zip_directory(root, Path("dir"), deny_globs=(), max_bytes=100)
