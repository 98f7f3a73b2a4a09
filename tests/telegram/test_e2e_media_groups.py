"""End to end through the fake Bot API: albums (``media_group_id``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from tests.telegram.conftest import CHAT, make_runtime

pytestmark = pytest.mark.timeout(120)

GROUP = -5005
ADMIN = 71
MEMBER = 72


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def album_harness(harness_factory, tmp_path, repo):
    def make(**settings):
        projects = ProjectsConfig(
            projects={"proj": ProjectConfig(alias="proj", path=repo)}, default_project="proj"
        )
        files = {"enabled": True, **settings.pop("files", {})}
        settings.setdefault("media_group_debounce_s", 0.3)
        runtime = make_runtime(tmp_path / "takopi.toml", projects)
        return harness_factory(runtime=runtime, files=files, **settings).start()

    return make


def _album(server, chat, group_id, items, *, caption=None, user_id=None):
    """Post ``items`` (name -> bytes) as one album; the caption goes on the first file."""
    sent = []
    for index, (name, content) in enumerate(items.items()):
        sent.append(
            server.send_user_document(
                chat,
                content,
                file_name=name,
                caption=caption if index == 0 else None,
                media_group_id=group_id,
                user_id=user_id,
            )
        )
    return sent


def test_album_with_file_put_dir_caption(server, fake_codex, album_harness, repo):
    h = album_harness()
    sent = _album(
        server, CHAT, "alb1", {"a.png": b"aaaa", "b.png": b"bb"}, caption="/file put shots/"
    )
    reply = h.reply_to(CHAT, sent[0]["message_id"])
    assert reply.text == "saved a.png, b.png to shots/ in proj (6 b)"
    assert (repo / "shots" / "a.png").read_bytes() == b"aaaa"
    assert (repo / "shots" / "b.png").read_bytes() == b"bb"
    # one answer for the whole album
    assert [
        m for m in server.bot_messages(CHAT) if m.reply_to_message_id == sent[1]["message_id"]
    ] == []


def test_album_auto_put_reports_failures_per_file(server, fake_codex, album_harness, repo):
    (repo / "incoming").mkdir()
    (repo / "incoming" / "old.txt").write_text("keep me")
    h = album_harness()
    sent = _album(server, CHAT, "alb2", {"new.txt": b"new", "old.txt": b"other", "x.pem": b"k"})
    reply = h.reply_to(CHAT, sent[0]["message_id"])
    assert reply.text == (
        "saved new.txt to incoming/ in proj (3 b)\n"
        "failed: old.txt (file already exists; use --force to overwrite.)\n"
        "failed: x.pem (path denied by rule: *.pem)"
    )
    assert (repo / "incoming" / "new.txt").read_bytes() == b"new"
    assert (repo / "incoming" / "old.txt").read_text() == "keep me"
    assert not (repo / "incoming" / "x.pem").exists()


def test_album_in_prompt_mode_runs_the_caption_with_every_path(
    server, fake_codex, album_harness, repo
):
    h = album_harness(files={"auto_put_mode": "prompt"})
    sent = _album(server, CHAT, "alb3", {"one.csv": b"1", "two.csv": b"2"}, caption="merge these")
    h.final_for(CHAT, sent[0]["message_id"])
    calls = fake_codex.calls()
    assert [c["prompt"] for c in calls] == [
        "merge these\n\n[uploaded files]\n- incoming/one.csv\n- incoming/two.csv"
    ]
    assert calls[0]["cwd"] == str(repo)
    # an album without a caption is only saved
    plain = _album(server, CHAT, "alb4", {"three.csv": b"3", "four.csv": b"4"})
    reply = h.reply_to(CHAT, plain[0]["message_id"])
    assert reply.text == "saved three.csv, four.csv to incoming/ in proj (2 b)"
    assert len(fake_codex.calls()) == 1


def test_album_respects_mentions_mode(server, fake_codex, album_harness, repo):
    server.add_chat(GROUP)
    server.set_member(GROUP, ADMIN, "administrator")
    h = album_harness(chat_id=GROUP, files={"auto_put_mode": "prompt"})
    mode = server.send_user_message(GROUP, "/trigger mentions", user_id=ADMIN)
    h.reply_to(GROUP, mode["message_id"])
    quiet = _album(server, GROUP, "alb5", {"q1.txt": b"q", "q2.txt": b"q"}, user_id=ADMIN)
    loud = _album(
        server,
        GROUP,
        "alb6",
        {"l1.txt": b"l", "l2.txt": b"l"},
        caption="@takopi_test_bot keep these",
        user_id=ADMIN,
    )
    h.final_for(GROUP, loud[0]["message_id"])
    marker = server.send_user_message(GROUP, "@takopi_test_bot marker", user_id=ADMIN)
    h.final_for(GROUP, marker["message_id"])
    # the leading mention is neither an @branch nor part of the prompt
    assert [c["prompt"] for c in fake_codex.calls()] == [
        "keep these\n\n[uploaded files]\n- incoming/l1.txt\n- incoming/l2.txt",
        "marker",
    ]
    quiet_ids = {m["message_id"] for m in quiet}
    assert [
        m
        for m in server.bot_messages(GROUP, include_deleted=True)
        if m.reply_to_message_id in quiet_ids
    ] == []
    assert sorted(p.name for p in (repo / "incoming").iterdir()) == ["l1.txt", "l2.txt"]


def test_album_from_a_group_member_is_refused(server, fake_codex, album_harness, repo):
    server.add_chat(GROUP)
    h = album_harness(chat_id=GROUP)
    sent = _album(server, GROUP, "alb7", {"m1.txt": b"m", "m2.txt": b"m"}, user_id=MEMBER)
    reply = h.reply_to(GROUP, sent[0]["message_id"])
    assert reply.text == "file transfer is restricted to group admins."
    assert not (repo / "incoming").exists()


def test_album_waits_for_media_group_debounce_s(server, fake_codex, album_harness, repo):
    """With a long ``media_group_debounce_s`` the album is still held after a later prompt
    has run and the default 1 s has long passed."""
    h = album_harness(media_group_debounce_s=60)
    posted = time.monotonic()
    sent = _album(server, CHAT, "slow", {"s1.txt": b"s", "s2.txt": b"s"})
    marker = server.send_user_message(CHAT, "marker")
    h.final_for(CHAT, marker["message_id"])
    time.sleep(max(0.0, 3.0 - (time.monotonic() - posted)))
    album_ids = {m["message_id"] for m in sent}
    assert [
        m
        for m in server.bot_messages(CHAT, include_deleted=True)
        if m.reply_to_message_id in album_ids
    ] == []
    assert not (repo / "incoming").exists()
    assert server.calls("getFile") == []
