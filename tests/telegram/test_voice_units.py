"""Unit tests of voice handling: the directive-preserving prefix and the OpenAI-compatible
transcription client against the fake transcription server (127.0.0.1)."""

from __future__ import annotations

import socket

import pytest

from takopi.telegram.transcription import DEFAULT_BASE_URL, Transcriber, TranscriptionError
from takopi.telegram.voice import VOICE_PREFIX, voice_prompt
from tests.fakes.transcription_server import TranscriptionServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

ENGINES = ("claude", "codex")
PROJECTS = ("Backend", "happy-gadgets")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_voice_prompt_puts_the_prefix_after_directives():
    def vp(text: str) -> str:
        return voice_prompt(text, engine_ids=ENGINES, projects=PROJECTS)

    assert VOICE_PREFIX == "(voice transcribed) "
    assert vp("fix the tests") == "(voice transcribed) fix the tests"
    assert vp("  /claude fix it ") == "/claude (voice transcribed) fix it"
    assert (
        vp("/backend @feat/x /codex run it") == "/codex /backend @feat/x (voice transcribed) run it"
    )
    assert vp("/happy-gadgets second\nline") == "/happy-gadgets (voice transcribed) second\nline"
    # not a directive: an unknown /word stays in the prompt
    assert vp("/unknown thing") == "(voice transcribed) /unknown thing"
    # contradictory directives are left for the run to report
    assert vp("/claude /codex go") == "(voice transcribed) /claude /codex go"


async def test_transcriber_posts_model_and_file_with_the_key():
    with TranscriptionServer(api_key="sk-unit-key-123") as srv:
        srv.set_transcript(b"audio", "hello there")
        client = Transcriber(
            model="whisper-1", base_url=srv.base_url + "/", api_key="sk-unit-key-123"
        )
        assert await client.transcribe(b"audio", content_type="audio/ogg") == "hello there"
        (request,) = srv.requests
        assert (request.model, request.filename, request.content) == (
            "whisper-1",
            "voice.ogg",
            b"audio",
        )
        assert request.authorization == "Bearer sk-unit-key-123"


async def test_transcriber_takes_base_url_and_key_from_the_environment():
    with TranscriptionServer(api_key="sk-env-key-456") as srv:
        srv.set_transcript(b"a", "from env")
        env = {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-env-key-456"}
        client = Transcriber(environ=env)
        assert client.base_url == srv.base_url and client.has_api_key
        assert await client.transcribe(b"a") == "from env"
        # the configured key beats the environment's
        configured = Transcriber(api_key="sk-config-789", environ=env)
        with pytest.raises(TranscriptionError, match=r"\(401\): Incorrect API key provided"):
            await configured.transcribe(b"a")
        assert srv.requests[-1].authorization == "Bearer sk-config-789"
        assert Transcriber(base_url="http://127.0.0.1:9/v1", environ=env).base_url.endswith(":9/v1")
    assert Transcriber(environ={}).base_url == DEFAULT_BASE_URL
    assert not Transcriber(environ={}).has_api_key


async def test_transcriber_errors_are_user_facing():
    with TranscriptionServer(api_key="sk-unit-key-123", prefix="/api/v1") as srv:
        bad_path = Transcriber(
            base_url=srv.base_url.replace("/api/v1", "/v1"), api_key="sk-unit-key-123"
        )
        with pytest.raises(TranscriptionError, match=r"\(404\): Invalid URL"):
            await bad_path.transcribe(b"x")
        srv.fail_next(503, "overloaded")
        good = Transcriber(base_url=srv.base_url, api_key="sk-unit-key-123")
        with pytest.raises(
            TranscriptionError, match=r"^voice transcription failed \(503\): overloaded$"
        ):
            await good.transcribe(b"x")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = Transcriber(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-unit-key-123")
    with pytest.raises(TranscriptionError, match="could not reach the transcription server"):
        await gone.transcribe(b"x")
    with pytest.raises(TranscriptionError, match="needs an API key"):
        await Transcriber(base_url=f"http://127.0.0.1:{port}/v1", environ={}).transcribe(b"x")
