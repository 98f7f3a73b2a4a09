"""End to end: voice notes through the fake Bot API and a fake OpenAI-compatible
transcription server (both real HTTP servers on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from tests.fakes.transcription_server import TranscriptionServer
from tests.telegram.conftest import CHAT, make_runtime
from tests.telegram.run_transport import transport_process

pytestmark = pytest.mark.timeout(120)

API_KEY = "sk-voice-test-key-0123456789"
GROUP = -6006
ADMIN = 81
MEMBER = 82
AUDIO = b"OggS\x00fake-opus-voice-note"


@pytest.fixture
def stt() -> Iterator[TranscriptionServer]:
    with TranscriptionServer(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def voice_harness(harness_factory, stt):
    def make(**settings):
        values = {
            "voice_transcription": True,
            "voice_transcription_base_url": stt.base_url,
            "voice_transcription_api_key": API_KEY,
            "voice_transcription_model": "whisper-test",
        }
        values.update(settings)
        return harness_factory(**values).start()

    return make


def test_voice_is_transcribed_and_run_with_the_prefix(server, fake_codex, stt, voice_harness):
    stt.set_transcript(AUDIO, "please fix the flaky test")
    h = voice_harness()
    voice = server.send_user_voice(CHAT, AUDIO)
    final = h.final_for(CHAT, voice["message_id"])
    assert "ok: (voice transcribed) please fix the flaky test" in final.text
    assert [c["prompt"] for c in fake_codex.calls()] == [
        "(voice transcribed) please fix the flaky test"
    ]
    (request,) = stt.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.model == "whisper-test"
    assert request.content == AUDIO
    assert request.filename == "voice.ogg"


def test_voice_directives_are_kept(server, fake_codex, stt, harness_factory, tmp_path):
    repo = tmp_path / "backend"
    repo.mkdir()
    projects = ProjectsConfig(projects={"backend": ProjectConfig(alias="backend", path=repo)})
    stt.set_transcript(AUDIO, "/codex /backend check the logs")
    h = harness_factory(
        runtime=make_runtime(tmp_path / "takopi.toml", projects),
        voice_transcription=True,
        voice_transcription_base_url=stt.base_url,
        voice_transcription_api_key=API_KEY,
    ).start()
    voice = server.send_user_voice(CHAT, AUDIO)
    final = h.final_for(CHAT, voice["message_id"])
    assert "ctx: backend" in final.text
    (call,) = fake_codex.calls()
    assert call["prompt"] == "(voice transcribed) check the logs"
    assert call["cwd"] == str(repo)


def test_voice_too_large_is_refused_before_transcription(server, fake_codex, stt, voice_harness):
    h = voice_harness(voice_max_bytes=10)
    declared = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, declared["message_id"]).text == (
        "voice message is too large to transcribe."
    )
    # Telegram did not say how big it is: the download stops at the limit
    undeclared = server.send_user_voice(CHAT, AUDIO, report_size=False)
    assert h.reply_to(CHAT, undeclared["message_id"]).text == (
        "voice message is too large to transcribe."
    )
    assert stt.requests == []
    assert fake_codex.calls() == []


def test_transcription_server_errors_are_answered_and_nothing_runs(
    server, fake_codex, stt, voice_harness
):
    h = voice_harness()
    stt.fail_next(500, "The server had an error while processing your request.")
    failed = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, failed["message_id"]).text == (
        "voice transcription failed (500): The server had an error while processing your request."
    )
    server.inject("5xx", method="downloadFile", count=4)
    lost = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, lost["message_id"]).text == "failed to download voice file."
    server.inject("error", method="getFile", description="Bad Request: invalid file_id")
    unknown = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, unknown["message_id"]).text == "failed to fetch voice file."
    stt.set_transcript(AUDIO, "   ")
    silent = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, silent["message_id"]).text == "voice transcription returned no text."
    assert fake_codex.calls() == []


def test_wrong_api_key_is_reported(server, fake_codex, stt, voice_harness):
    h = voice_harness(voice_transcription_api_key="sk-wrong-key-000000")
    voice = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, voice["message_id"]).text == (
        "voice transcription failed (401): Incorrect API key provided."
    )


def test_missing_api_key_is_reported(server, fake_codex, stt, voice_harness, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    h = voice_harness(voice_transcription_api_key=None)
    voice = server.send_user_voice(CHAT, AUDIO)
    assert h.reply_to(CHAT, voice["message_id"]).text == (
        "voice transcription needs an API key: set voice_transcription_api_key or OPENAI_API_KEY."
    )
    assert stt.requests == []


def test_openai_api_key_from_the_environment(server, fake_codex, stt, voice_harness, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    stt.set_transcript(AUDIO, "from the env")
    h = voice_harness(voice_transcription_api_key=None)
    voice = server.send_user_voice(CHAT, AUDIO)
    h.final_for(CHAT, voice["message_id"])
    assert stt.requests[0].authorization == f"Bearer {API_KEY}"


def test_voice_disabled_gets_the_reference_hint(server, fake_codex, stt, harness_factory):
    h = harness_factory().start()
    voice = server.send_user_voice(CHAT, AUDIO)
    reply = h.reply_to(CHAT, voice["message_id"])
    # the reference text: a sentence, then a ``toml`` code block (blank lines between
    # blocks are the renderer's business)
    assert reply.text.startswith("voice transcription is disabled. enable it in config:\n")
    (block,) = [e for e in reply.entities if e["type"] == "pre"]
    assert block.get("language") == "toml"
    code = reply.text[block["offset"] : block["offset"] + block["length"]]
    assert code.strip() == "[transports.telegram]\nvoice_transcription = true"
    assert reply.text.rstrip().endswith(code.strip())
    assert server.calls("getFile") == [] and stt.requests == []


def test_mentions_mode_checks_the_trigger_before_transcribing(
    server, fake_codex, stt, voice_harness
):
    server.add_chat(GROUP)
    server.set_member(GROUP, ADMIN, "administrator")
    stt.set_transcript(AUDIO, "ship it")
    h = voice_harness(chat_id=GROUP)
    mode = server.send_user_message(GROUP, "/trigger mentions", user_id=ADMIN)
    h.reply_to(GROUP, mode["message_id"])
    ignored = server.send_user_voice(GROUP, AUDIO, user_id=MEMBER)
    marker = server.send_user_message(GROUP, "@takopi_test_bot marker", user_id=MEMBER)
    final = h.final_for(GROUP, marker["message_id"])
    assert [
        m
        for m in server.bot_messages(GROUP, include_deleted=True)
        if m.reply_to_message_id == ignored["message_id"]
    ] == []
    assert stt.requests == [] and server.calls("getFile") == []
    # a voice reply to the bot triggers
    answer = server.send_user_voice(GROUP, AUDIO, user_id=MEMBER, reply_to=final.message_id)
    h.final_for(GROUP, answer["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["marker", "(voice transcribed) ship it"]


def test_mentions_mode_with_transcription_off_stays_silent(server, fake_codex, harness_factory):
    server.add_chat(GROUP)
    server.set_member(GROUP, ADMIN, "administrator")
    h = harness_factory(chat_id=GROUP).start()
    mode = server.send_user_message(GROUP, "/trigger mentions", user_id=ADMIN)
    h.reply_to(GROUP, mode["message_id"])
    ignored = server.send_user_voice(GROUP, AUDIO, user_id=MEMBER)
    marker = server.send_user_message(GROUP, "@takopi_test_bot marker", user_id=MEMBER)
    h.final_for(GROUP, marker["message_id"])
    assert [
        m
        for m in server.bot_messages(GROUP, include_deleted=True)
        if m.reply_to_message_id == ignored["message_id"]
    ] == []


def test_api_key_never_reaches_the_logs_or_the_chat(server, fake_codex, stt, tmp_path):
    """The real backend in a process, logging JSON at debug level; the server even echoes
    the key back in its error (as OpenAI does, partly masked)."""
    stt.fail_next(401, f"Incorrect API key provided: {API_KEY}.")
    stt.set_transcript(AUDIO, "hello from a process")
    with transport_process(
        tmp_path,
        server,
        CHAT,
        voice_transcription="true",
        voice_transcription_base_url=f'"{stt.base_url}"',
        voice_transcription_api_key=f'"{API_KEY}"',
    ) as running:
        rejected = server.send_user_voice(CHAT, AUDIO)
        error = server.wait_for(
            lambda: [
                m
                for m in server.bot_messages(CHAT)
                if m.reply_to_message_id == rejected["message_id"]
            ],
            timeout=30,
        )[0]
        ok = server.send_user_voice(CHAT, AUDIO)
        server.wait_for(
            lambda: any(
                m.reply_to_message_id == ok["message_id"] and m.text.startswith("done")
                for m in server.bot_messages(CHAT)
            ),
            timeout=30,
        )
    logs = running.logs
    assert "telegram.voice.transcription_failed" in logs
    assert "telegram.voice.transcribed" in logs
    assert API_KEY not in logs
    assert API_KEY not in error.text and error.text.startswith("voice transcription failed (401)")
    assert [c["prompt"] for c in fake_codex.calls()] == ["(voice transcribed) hello from a process"]
