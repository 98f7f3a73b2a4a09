"""Unit tests of the file-transfer pieces: attachments, path checks, safe writes, the album
buffer, the Bot API file calls and :class:`FileTransfer` limits (fake Bot API on 127.0.0.1)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

import anyio
import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.telegram.attachments import incoming_file, incoming_voice, replied_file
from takopi.telegram.bridge import TelegramFilesConfig
from takopi.telegram.client import TelegramClient
from takopi.telegram.client_api import TelegramFileTooLargeError
from takopi.telegram.file_transfer import (
    DOWNLOAD_TOO_LARGE,
    UPLOAD_ESCAPES,
    UPLOAD_TOO_LARGE,
    FileTransfer,
    TransferError,
    checked_path,
    located_path,
    upload_destination,
)
from takopi.telegram.files import PathEscapeError, write_upload
from takopi.telegram.media_groups import MediaGroupBuffer
from takopi.telegram.parsing import parse_message
from tests.telegram.conftest import CHAT, make_runtime

DENY = (".git/**", ".env", ".envrc", "*.pem", ".ssh/**")


def _fast(_chat: int | None) -> float:
    return 0.0


# -- attachments ---------------------------------------------------------------------------


def test_incoming_file_kinds_and_largest_photo():
    doc = incoming_file({"document": {"file_id": "d", "file_name": "a.pdf", "file_size": 3}})
    assert (doc.kind, doc.file_name, doc.file_size) == ("document", "a.pdf", 3)
    video = incoming_file({"video": {"file_id": "v", "mime_type": "video/mp4"}})
    assert (video.kind, video.file_id, video.mime_type) == ("video", "v", "video/mp4")
    sizes = [
        {"file_id": "small", "width": 90, "height": 90, "file_size": 10},
        {"file_id": "big", "width": 800, "height": 600, "file_size": 900},
        {"file_id": "mid", "width": 320, "height": 240, "file_size": 100},
    ]
    assert incoming_file({"photo": sizes}).file_id == "big"
    no_sizes = [{k: v for k, v in s.items() if k != "file_size"} for s in sizes]
    assert incoming_file({"photo": no_sizes}).file_id == "big"
    assert incoming_file({"photo": no_sizes}).file_name is None
    assert incoming_file({"text": "hi"}) is None
    assert incoming_file({"document": {"file_name": "no id"}}) is None
    assert incoming_voice({"voice": {"file_id": "o", "file_size": 7}}).file_size == 7
    reply = {"reply_to_message": {"document": {"file_id": "r", "file_name": "r.txt"}}}
    assert replied_file(reply).file_id == "r"
    assert replied_file({"text": "x"}) is None


# -- path checks -----------------------------------------------------------------------------


def test_checked_path_and_destination():
    assert checked_path("./docs//a.txt", DENY, escapes="esc") == PurePosixPath("docs/a.txt")
    for raw, message in [
        ("../a", "esc"),
        ("/etc/passwd", "esc"),
        ("~/x", "esc"),
        ("", "esc"),
        ("sub/.git/HEAD", "path denied by rule: .git/**"),
        (".ssh/id_rsa", "path denied by rule: .ssh/**"),
        ("keys/x.pem", "path denied by rule: *.pem"),
    ]:
        with pytest.raises(TransferError, match=message.replace("*", r"\*").replace(".", r"\.")):
            checked_path(raw, DENY, escapes="esc")
    assert upload_destination(None, "a.txt", "incoming") == "incoming/a.txt"
    assert upload_destination("docs/", "a.txt", "incoming") == "docs/a.txt"
    assert upload_destination("docs/b.txt", "a.txt", "incoming/") == "docs/b.txt"


def test_located_path_follows_symlinks(tmp_path: Path):
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (root / ".env").write_text("x")
    (root / "to_inside").symlink_to(root / "inside")
    (root / "to_env").symlink_to(root / ".env")
    (root / "out").symlink_to(tmp_path)
    resolved = located_path(root, PurePosixPath("to_inside/f.txt"), DENY, escapes="esc")
    assert resolved == (root / "inside" / "f.txt").resolve()
    with pytest.raises(TransferError, match="esc"):
        located_path(root, PurePosixPath("out/f.txt"), DENY, escapes="esc")
    with pytest.raises(TransferError, match=r"path denied by rule: \.env"):
        located_path(root, PurePosixPath("to_env"), DENY, escapes="esc")


# -- safe writes -----------------------------------------------------------------------------


def test_write_upload_never_overwrites_and_cleans_up(tmp_path: Path, monkeypatch):
    target = tmp_path / "a" / "b" / "f.txt"
    write_upload(target, b"one", overwrite=False, root=tmp_path)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        write_upload(target, b"two", overwrite=False, root=tmp_path)
    assert target.read_bytes() == b"one"
    target.chmod(0o750)
    write_upload(target, b"three", overwrite=True, root=tmp_path)
    assert target.read_bytes() == b"three"
    assert stat.S_IMODE(target.stat().st_mode) == 0o750  # the replaced file's mode is kept
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]

    # a parent that is a file: nothing created, nothing left
    (tmp_path / "plain").write_text("x")
    with pytest.raises(OSError):
        write_upload(tmp_path / "plain" / "sub" / "f.txt", b"x", overwrite=False)
    # a parent swapped for a symlink out of the root: refused, created dirs removed
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "jump").symlink_to(outside)
    with pytest.raises(PathEscapeError):
        write_upload(root / "jump" / "new" / "f.txt", b"x", overwrite=False, root=root)
    assert list(outside.iterdir()) == []

    # file systems without hard links: check-then-rename, still no overwrite
    def no_links(src, dst):
        raise OSError(errno.EPERM, "no hard links")

    monkeypatch.setattr(os, "link", no_links)
    other = tmp_path / "c" / "g.txt"
    write_upload(other, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_upload(other, b"second", overwrite=False)
    assert other.read_bytes() == b"first"
    leftovers = [p for p in tmp_path.rglob(".takopi-upload-*")]
    assert leftovers == []


def test_write_failure_leaves_no_temp_file_and_no_new_directory(tmp_path: Path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_upload(tmp_path / "new" / "deeper" / "f.txt", b"data", overwrite=True)
    assert list(tmp_path.iterdir()) == []


# -- the album buffer ------------------------------------------------------------------------


def _album_msg(message_id: int, group: str, chat: int = CHAT):
    return parse_message(
        {
            "message_id": message_id,
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False},
            "media_group_id": group,
            "document": {"file_id": f"f{message_id}"},
        }
    )


@pytest.mark.anyio
async def test_media_group_buffer_groups_sorts_and_survives_failures():
    flushed: list[list[int]] = []
    got = anyio.Event()

    async def on_flush(messages, _held):
        flushed.append([m.message_id for m in messages])
        if messages[0].media_group_id == "bad":
            raise RuntimeError("boom")
        got.set()

    async with anyio.create_task_group() as tg:
        buffer = MediaGroupBuffer(delay_s=0.2, task_group=tg, on_flush=on_flush)
        buffer.add(_album_msg(5, "bad"))
        buffer.add(_album_msg(3, "g"))
        buffer.add(_album_msg(2, "g"))
        buffer.add(_album_msg(2, "g"))  # a re-delivery is kept once
        buffer.add(_album_msg(4, "g", chat=-1))  # same group id, other chat
        assert buffer.pending() == 3
        with anyio.fail_after(10):
            await got.wait()
            while buffer.pending():
                await anyio.sleep(0.01)
        got = anyio.Event()
        buffer.add(_album_msg(9, "g"))  # after the flush: a new album
        with anyio.fail_after(10):
            await got.wait()
        with pytest.raises(ValueError):
            buffer.add(parse_message({"message_id": 1, "chat": {"id": 1}, "text": "x"}))
    assert sorted(flushed) == [[2, 3], [4], [5], [9]]


# -- Bot API file calls ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_file_download_and_send_document(server):
    stored = server.add_file(b"0123456789", suffix=".bin")
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        info = await bot.get_file(stored.file_id)
        assert info["file_path"] == stored.file_path and info["file_size"] == 10
        assert await bot.download_file(stored.file_path) == b"0123456789"
        with pytest.raises(TelegramFileTooLargeError):
            await bot.download_file(stored.file_path, max_bytes=9)
        assert await bot.get_file("nope") is None
        assert await bot.download_file("documents/missing") is None
        server.inject("429", method="getFile", retry_after=0.1)
        assert (await bot.get_file(stored.file_id))["file_id"] == stored.file_id
        payload = bytes(range(256)) * 4
        sent = await bot.send_document(
            CHAT, "blob.bin", payload, caption="here", reply_to_message_id=999
        )
        assert sent is not None and sent["document"]["file_name"] == "blob.bin"
    (doc,) = server.sent_documents(CHAT)
    assert (doc.document.filename, doc.document.content, doc.text) == ("blob.bin", payload, "here")
    big = server.add_file(b"x", size=20 * 1024 * 1024 + 1)
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        assert await bot.get_file(big.file_id) is None  # Telegram: "file is too big"


# -- FileTransfer limits ---------------------------------------------------------------------


def _transfer(server, bot, tmp_path: Path, repo: Path, **limits) -> tuple[FileTransfer, list[str]]:
    replies: list[str] = []

    async def reply(_msg, text):
        replies.append(text)

    async def ambient(_chat):
        return None

    projects = ProjectsConfig(
        projects={"proj": ProjectConfig(alias="proj", path=repo)}, default_project="proj"
    )
    transfer = FileTransfer(
        bot=bot,
        config=TelegramFilesConfig(enabled=True),
        runtime=make_runtime(tmp_path / "takopi.toml", projects),
        reply=reply,
        ambient_context=ambient,
        **limits,
    )
    return transfer, replies


@pytest.mark.anyio
async def test_upload_limit_holds_when_telegram_does_not_declare_a_size(server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    big = parse_message(
        server.send_user_document(CHAT, b"x" * 64, file_name="a.bin", report_size=False)
    )
    small = parse_message(server.send_user_document(CHAT, b"x" * 8, file_name="b.bin"))
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        transfer, _ = _transfer(server, bot, tmp_path, repo, max_upload_bytes=32)
        workspace = await transfer.workspace(big, "", upload=True)
        with pytest.raises(TransferError, match=UPLOAD_TOO_LARGE):
            await transfer.save(incoming_file(big.raw), workspace, None, force=False)
        assert len(server.downloads) == 1  # the download itself hit the limit
        with pytest.raises(TransferError, match=UPLOAD_ESCAPES):
            await transfer.save(incoming_file(small.raw), workspace, "../x", force=False)
        saved = await transfer.save(incoming_file(small.raw), workspace, "ok/", force=False)
    assert saved.rel == PurePosixPath("ok/b.bin")
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == ["ok", "ok/b.bin"]


@pytest.mark.anyio
async def test_directory_zip_over_the_limit_is_not_sent(server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "noise.bin").write_bytes(os.urandom(4096))
    raw = server.send_user_message(CHAT, "/file get data")
    msg = parse_message(raw)
    async with TelegramClient(server.token, api_url=server.base_url, interval_for=_fast) as bot:
        transfer, replies = _transfer(server, bot, tmp_path, repo, max_download_bytes=1024)
        await transfer.handle_command(msg, "get data")
    assert replies == [DOWNLOAD_TOO_LARGE]
    assert server.sent_documents(CHAT) == []
