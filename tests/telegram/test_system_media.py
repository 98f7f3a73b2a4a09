"""File transfer and voice notes in the whole system: supervisor + telegram transport worker
(its runtime is the supervisor's, over RPC) + codex engine worker, against the fake Bot API and
the fake transcription server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.transcription_server import TranscriptionServer
from tests.process.procmem import memory_contains
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT
from tests.telegram.test_system import System, system_in_tmp

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

API_KEY = "sk-system-voice-key-42"
AUDIO = b"OggS-system-voice"


@pytest.fixture
def system(server: Any, fake_codex: Any) -> Iterator[System]:
    with system_in_tmp(server, "tkm") as sys_:
        yield sys_


def test_files_and_voice_through_the_supervisor(
    system: System, server: Any, fake_codex: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.py").write_text("print('system')\n")
    with TranscriptionServer(api_key=API_KEY) as stt:
        stt.set_transcript(AUDIO, "/repo summarize the app")
        system.start(
            telegram=[
                "voice_transcription = true",
                f'voice_transcription_base_url = "{stt.base_url}"',
                f'voice_transcription_api_key = "{API_KEY}"',
                "media_group_debounce_s = 0.2",
            ],
            tables=[
                "[transports.telegram.files]",
                "enabled = true",
                'auto_put_mode = "prompt"',
                "[projects.repo]",
                f'path = "{repo}"',
            ],
        )

        def reply_to(msg: dict[str, Any], prefix: str = "") -> Any:
            return system.wait_bot(
                lambda m: m.reply_to_message_id == msg["message_id"] and m.text.startswith(prefix)
            )

        put = server.send_user_document(
            CHAT, b"hello", file_name="a.txt", caption="/file put /repo docs/"
        )
        assert reply_to(put).text == "saved docs/a.txt in repo (5 b)"
        assert (repo / "docs" / "a.txt").read_bytes() == b"hello"

        get = server.send_user_message(CHAT, "/file get /repo src/app.py")
        sent = system.wait_bot(
            lambda m: m.document is not None and m.reply_to_message_id == get["message_id"]
        )
        assert sent.document.content == b"print('system')\n"

        upload = server.send_user_document(CHAT, b"data", file_name="b.csv", caption="/repo load")
        reply_to(upload, "done")
        voice = server.send_user_voice(CHAT, AUDIO)
        reply_to(voice, "done")

        album = [
            server.send_user_document(
                CHAT, body, file_name=name, media_group_id="sys1", caption=caption
            )
            for name, body, caption in [
                ("x.txt", b"x", "/file put /repo pics/"),
                ("y.txt", b"y", None),
            ]
        ]
        assert reply_to(album[0]).text == "saved x.txt, y.txt to pics/ in repo (2 b)"

    calls = wait_until(lambda: fake_codex.calls() if len(fake_codex.calls()) == 2 else None)
    assert [c["prompt"] for c in calls] == [
        "load\n\n[uploaded file: incoming/b.csv]",
        "(voice transcribed) summarize the app",
    ]
    assert {c["cwd"] for c in calls} == {str(repo)}
    assert (repo / "incoming" / "b.csv").read_bytes() == b"data"
    assert stt.requests[0].authorization == f"Bearer {API_KEY}"
    assert API_KEY not in system.log_path.read_text()


FILE_TRANSFER_TEXT = b"files between a chat and a project's repo or worktree."
"""From the docstring of ``takopi.telegram.file_transfer``: in memory once it is imported."""


def test_file_transfer_is_loaded_by_the_first_file_message(
    system: System, server: Any, fake_codex: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "notes.txt").write_text("notes\n")
    system.start(
        tables=[
            "[transports.telegram.files]",
            "enabled = true",
            "[projects.repo]",
            f'path = "{repo}"',
        ]
    )
    user = server.send_user_message(CHAT, "hello")
    system.wait_bot(lambda m: m.reply_to_message_id == user["message_id"] and "done" in m.text)
    transport = system.worker("transport")["pid"]
    assert not memory_contains(transport, FILE_TRANSFER_TEXT)
    get = server.send_user_message(CHAT, "/file get /repo notes.txt")
    sent = system.wait_bot(
        lambda m: m.document is not None and m.reply_to_message_id == get["message_id"]
    )
    assert sent.document.content == b"notes\n"
    assert system.worker("transport")["pid"] == transport
    assert memory_contains(transport, FILE_TRANSFER_TEXT)
