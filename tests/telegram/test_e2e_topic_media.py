"""End to end: file transfer, albums and voice notes inside managed forum topics — each topic's
bound context decides where files go and where a transcript runs, replies stay in the topic's
thread, and transcripts and captioned uploads use the topic's session like text prompts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from tests.fakes.transcription_server import TranscriptionServer
from tests.telegram.conftest import make_runtime

pytestmark = pytest.mark.timeout(120)

FORUM = -100888
ADMIN = 601
MEMBER = 602
API_KEY = "sk-topic-voice-key-0123456789"


@pytest.fixture
def stt() -> Iterator[TranscriptionServer]:
    with TranscriptionServer(api_key=API_KEY) as srv:
        yield srv


def _start(server, harness_factory, tmp_path: Path, **settings):
    server.add_chat(FORUM, is_forum=True)
    server.set_member(FORUM, server.bot_id, "administrator", can_manage_topics=True)
    server.set_member(FORUM, ADMIN, "administrator")
    for alias in ("api", "web"):
        (tmp_path / alias).mkdir(exist_ok=True)
    projects = ProjectsConfig(
        projects={
            alias: ProjectConfig(alias=alias, path=tmp_path / alias) for alias in ("api", "web")
        }
    )
    return harness_factory(
        runtime=make_runtime(tmp_path / "takopi.toml", projects),
        chat_id=FORUM,
        topics={"enabled": True, "scope": "main"},
        session_mode="chat",
        show_resume_line=False,
        **settings,
    ).start()


def _bound_topic(h, server, name: str, alias: str) -> int:
    thread = server.create_topic(FORUM, name)
    msg = server.send_user_message(FORUM, f"/ctx set {alias}", user_id=ADMIN, thread_id=thread)
    assert h.reply_to(FORUM, msg["message_id"]).text == f"topic bound to {alias}"
    return thread


def _answer(h, msg, **kw):
    return h.reply_to(FORUM, msg["message_id"], **kw)


def _topic_session(tmp_path: Path, thread: int) -> str:
    state = json.loads((tmp_path / "telegram_topics_state.json").read_text())
    return state["threads"][f"{FORUM}:{thread}"]["sessions"]["codex"]["resume"]  # type: ignore[no-any-return]


def test_uploads_and_file_commands_use_the_topic_context(
    server, fake_codex, harness_factory, tmp_path
):
    h = _start(
        server,
        harness_factory,
        tmp_path,
        files={"enabled": True, "auto_put_mode": "prompt"},
        media_group_debounce_s=0.3,
    )
    t_api = _bound_topic(h, server, "first", "api")
    t_web = _bound_topic(h, server, "second", "web")
    t_free = server.create_topic(FORUM, "unbound")

    # auto-put without a caption: into the topic's project, answered in the topic
    plain = server.send_user_document(
        FORUM, b"hello", file_name="notes.txt", user_id=ADMIN, thread_id=t_api
    )
    saved = _answer(h, plain)
    assert (saved.text, saved.thread_id) == ("saved incoming/notes.txt in api (5 b)", t_api)
    assert (tmp_path / "api" / "incoming" / "notes.txt").read_bytes() == b"hello"

    # /file put in another topic goes to that topic's project
    put = server.send_user_document(
        FORUM,
        b"# spec",
        file_name="spec.md",
        caption="/file put docs/",
        user_id=ADMIN,
        thread_id=t_web,
    )
    assert _answer(h, put).text == "saved docs/spec.md in web (6 b)"
    assert (tmp_path / "web" / "docs" / "spec.md").read_bytes() == b"# spec"

    # /file get: sent into the topic's thread, from the topic's project only
    get = server.send_user_message(
        FORUM, "/file get incoming/notes.txt", user_id=ADMIN, thread_id=t_api
    )
    sent = server.wait_for(lambda: server.sent_documents(FORUM))[0]
    assert (sent.thread_id, sent.reply_to_message_id) == (t_api, get["message_id"])
    assert sent.document is not None and sent.document.content == b"hello"
    missing = server.send_user_message(
        FORUM, "/file get incoming/notes.txt", user_id=ADMIN, thread_id=t_web
    )
    refused = _answer(h, missing)
    assert (refused.text, refused.thread_id) == (
        "incoming/notes.txt does not exist in web.",
        t_web,
    )

    # an album in a topic: collected, then put into that topic's project
    for name in ("a.txt", "b.txt"):
        server.send_user_document(
            FORUM,
            b"ab",
            file_name=name,
            media_group_id="album-1",
            user_id=ADMIN,
            thread_id=t_web,
        )
    album = h.wait_bot_message(FORUM, lambda m: m.text.startswith("saved a.txt"))
    assert (album.text, album.thread_id) == ("saved a.txt, b.txt to incoming/ in web (4 b)", t_web)

    # an unbound topic has no context for uploads
    lost = server.send_user_document(
        FORUM, b"x", file_name="x.txt", user_id=ADMIN, thread_id=t_free
    )
    unbound = _answer(h, lost)
    assert (unbound.text, unbound.thread_id) == (
        "no project context available for file upload.",
        t_free,
    )

    # prompt mode: the caption runs in the topic, with the topic's session, like text
    captioned = server.send_user_document(
        FORUM,
        b"report",
        file_name="report.txt",
        caption="summarize",
        user_id=ADMIN,
        thread_id=t_api,
    )
    final = h.final_for(FORUM, captioned["message_id"])
    assert final.thread_id == t_api and "ctx: api" in final.text
    follow = server.send_user_message(FORUM, "and shorter", user_id=ADMIN, thread_id=t_api)
    h.final_for(FORUM, follow["message_id"])
    first, second = fake_codex.calls()
    assert first["prompt"] == "summarize\n\n[uploaded file: incoming/report.txt]"
    assert first["cwd"] == str(tmp_path / "api") and first["resume"] is None
    assert second["resume"] is not None and second["resume"] == _topic_session(tmp_path, t_api)
    assert (tmp_path / "api" / "incoming" / "report.txt").read_bytes() == b"report"
    assert not (tmp_path / "web" / "incoming" / "x.txt").exists()


def test_voice_notes_run_in_the_topic_like_text(server, fake_codex, harness_factory, tmp_path, stt):
    h = _start(
        server,
        harness_factory,
        tmp_path,
        voice_transcription=True,
        voice_transcription_base_url=stt.base_url,
        voice_transcription_api_key=API_KEY,
    )
    t_api = _bound_topic(h, server, "first", "api")
    t_quiet = _bound_topic(h, server, "quiet", "web")
    t_free = server.create_topic(FORUM, "unbound")
    mode = server.send_user_message(FORUM, "/trigger mentions", user_id=ADMIN, thread_id=t_quiet)
    assert _answer(h, mode).text == "topic trigger mode set to mentions"
    stt.set_transcript(b"voice-1", "check the logs")
    stt.set_transcript(b"voice-2", "and the metrics")
    stt.set_transcript(b"voice-3", "anything")

    first = server.send_user_voice(FORUM, b"voice-1", user_id=ADMIN, thread_id=t_api)
    final = h.final_for(FORUM, first["message_id"])
    assert final.thread_id == t_api and "ctx: api" in final.text
    second = server.send_user_voice(FORUM, b"voice-2", user_id=ADMIN, thread_id=t_api)
    h.final_for(FORUM, second["message_id"])
    one, two = fake_codex.calls()
    assert one["prompt"] == "(voice transcribed) check the logs"
    assert one["cwd"] == str(tmp_path / "api") and one["resume"] is None
    # the second voice note resumed the topic's session, as a text prompt would
    assert two["prompt"] == "(voice transcribed) and the metrics"
    assert two["resume"] is not None and two["resume"] == _topic_session(tmp_path, t_api)

    # the topic's trigger mode is checked before transcribing
    quiet = server.send_user_voice(FORUM, b"voice-3", user_id=MEMBER, thread_id=t_quiet)
    marker = server.send_user_message(
        FORUM, "@takopi_test_bot marker", user_id=MEMBER, thread_id=t_quiet
    )
    marked = h.final_for(FORUM, marker["message_id"])
    assert marked.thread_id == t_quiet and "ctx: web" in marked.text
    assert [r.content for r in stt.requests] == [b"voice-1", b"voice-2"]
    assert [
        m for m in server.bot_messages(FORUM) if m.reply_to_message_id == quiet["message_id"]
    ] == []

    # an unbound topic: transcribed, then the prompt path's unbound-topic notice, no run
    free = server.send_user_voice(FORUM, b"voice-3", user_id=ADMIN, thread_id=t_free)
    notice = _answer(h, free)
    assert notice.thread_id == t_free
    assert notice.text.startswith("this topic isn't bound to a project yet.")
    assert len(fake_codex.calls()) == 3
