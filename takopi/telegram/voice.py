"""Voice notes: transcribe them into the text of a prompt.

With ``voice_transcription`` off a voice note gets a hint on how to turn it on. Otherwise the
note is checked against ``voice_max_bytes`` (as declared, then as downloaded), fetched
(``getFile`` and the file download) and transcribed; failures are answered and nothing runs.
The transcript keeps its leading directives (``/engine``, ``/project``, ``@branch``) and the
prompt after them gets the ``(voice transcribed) `` prefix. The chat loop checks the trigger
mode before this module is called, and runs the prompt through its usual prompt path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from takopi.directives import DirectiveError, parse_directives
from takopi.logging import get_logger

from .attachments import FetchError, FileSource, download, incoming_voice, locate_file
from .bridge import TelegramVoiceTranscriptionConfig
from .transcription import Transcriber, TranscriptionError
from .types import Reply, TelegramIncomingMessage

VOICE_PREFIX = "(voice transcribed) "
VOICE_DISABLED = (
    "voice transcription is disabled. enable it in config:\n"
    "```toml\n[transports.telegram]\nvoice_transcription = true\n```"
)
VOICE_TOO_LARGE = "voice message is too large to transcribe."
VOICE_FETCH_FAILED = "failed to fetch voice file."
VOICE_DOWNLOAD_FAILED = "failed to download voice file."
VOICE_EMPTY = "voice transcription returned no text."

log = get_logger(__name__)


class SpeechToText(Protocol):
    """What transcribes audio (:class:`~takopi.telegram.transcription.Transcriber`)."""

    async def transcribe(
        self, audio: bytes, *, filename: str = ..., content_type: str = ...
    ) -> str: ...


def voice_prompt(
    transcript: str, *, engine_ids: Iterable[str], projects: Iterable[str] | None
) -> str:
    """``transcript`` with ``(voice transcribed) `` put after its leading directives:
    ``/claude @feat fix it`` ⇒ ``/claude @feat (voice transcribed) fix it``."""
    text = transcript.strip()
    try:
        parsed = parse_directives(text, engine_ids=engine_ids, projects=projects)
    except DirectiveError:
        return VOICE_PREFIX + text  # the run reports the contradiction
    head = [f"/{d}" for d in (parsed.engine, parsed.project) if d]
    if parsed.branch:
        head.append(f"@{parsed.branch}")
    body = VOICE_PREFIX + parsed.prompt
    return " ".join([*head, body]) if head else body


class VoiceNotes:
    """Voice-note handling (see module docstring). ``runtime`` gives the engine ids and
    project aliases directives may name."""

    def __init__(
        self,
        *,
        bot: FileSource,
        config: TelegramVoiceTranscriptionConfig,
        runtime: Any,
        reply: Reply,
        transcriber: SpeechToText | None = None,
    ) -> None:
        self.bot = bot
        self.config = config
        self.runtime = runtime
        self.reply = reply
        self.transcriber: SpeechToText = transcriber or Transcriber(
            model=config.model, base_url=config.base_url, api_key=config.api_key
        )

    async def prompt(self, msg: TelegramIncomingMessage) -> str | None:
        """The prompt text of a voice note (its transcript, see :func:`voice_prompt`), or
        None when it has none: the hint or the error is answered instead."""
        voice = incoming_voice(msg.raw)
        if voice is None:
            return None
        if not self.config.enabled:
            await self.reply(msg, VOICE_DISABLED)
            return None
        text = await self._transcribe(msg, voice)
        if text is None:
            return None
        prompt = voice_prompt(
            text, engine_ids=self.runtime.engine_ids, projects=self.runtime.project_aliases()
        )
        log.info("telegram.voice.transcribed", chat_id=msg.chat_id, chars=len(text))
        return prompt

    async def _transcribe(self, msg: TelegramIncomingMessage, voice: Any) -> str | None:
        limit = self.config.max_bytes
        failure = {
            "too_large": VOICE_TOO_LARGE,
            "fetch": VOICE_FETCH_FAILED,
            "download": VOICE_DOWNLOAD_FAILED,
        }
        try:
            remote = await locate_file(self.bot, voice, max_bytes=limit)
            audio = await download(self.bot, remote, max_bytes=limit)
        except FetchError as exc:
            log.info("telegram.voice.rejected", reason=exc.reason, chat_id=msg.chat_id)
            await self.reply(msg, failure[exc.reason])
            return None
        try:
            text = await self.transcriber.transcribe(
                audio, filename="voice.ogg", content_type=voice.mime_type or "audio/ogg"
            )
        except TranscriptionError as exc:
            await self.reply(msg, str(exc))
            return None
        if not text.strip():
            await self.reply(msg, VOICE_EMPTY)
            return None
        return text


__all__ = [
    "VOICE_DISABLED",
    "VOICE_PREFIX",
    "SpeechToText",
    "VoiceNotes",
    "voice_prompt",
]
