"""The file and voice features of the chat loop, built from its config in one place.

The routing steps of :mod:`.media_steps` call them in the reference order: ``/file`` goes to
:meth:`MediaHandlers.file_command`; after the trigger-mode check, voice notes to
:meth:`~MediaHandlers.voice_prompt` and documents, photos and videos to
:meth:`~MediaHandlers.document_prompt`; a complete album to
:meth:`~MediaHandlers.album_prompt`. The ``*_prompt`` methods answer the message themselves
(saved, usage, error…) or return the text to run as a prompt, which the steps hand on to the
prompt path. An unexpected failure in any of them is logged and answered (``error:`` and
what failed), so a message never goes unanswered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio

from takopi.context import RunContext
from takopi.logging import get_logger

from .bridge import TelegramBridgeConfig
from .types import Reply, TelegramIncomingMessage
from .voice import SpeechToText, VoiceNotes

if TYPE_CHECKING:
    from .file_transfer import FileTransfer
    from .uploads import Uploads

log = get_logger(__name__)
AmbientContext = Callable[[TelegramIncomingMessage], Awaitable[RunContext | None]]
Triggered = Callable[[TelegramIncomingMessage, str | None], Awaitable[bool]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _FileFeatures:
    files: FileTransfer
    uploads: Uploads


@dataclass(slots=True)
class MediaHandlers:
    """``/file``, auto-put uploads, albums and voice notes. The file transfer and upload
    modules are imported, and their handlers built, on the first message that needs them: a
    chat that never sends a file or ``/file`` does without them."""

    cfg: TelegramBridgeConfig
    reply: Reply
    ambient_context: AmbientContext
    triggered: Triggered
    strip_mention: Callable[[str], str]
    voice: VoiceNotes
    _file_features: _FileFeatures | None = field(default=None, init=False)

    @property
    def features(self) -> _FileFeatures:
        """The file transfer and upload handlers (built now if not yet)."""
        if self._file_features is None:
            self._file_features = self._build()
        return self._file_features

    def _build(self) -> _FileFeatures:
        from .file_transfer import FileTransfer
        from .uploads import Uploads

        cfg = self.cfg
        files = FileTransfer(
            bot=cfg.bot,
            config=cfg.files,
            runtime=cfg.runtime,
            reply=self.reply,
            ambient_context=self.ambient_context,
        )
        uploads = Uploads(
            transfer=files,
            config=cfg.files,
            reply=self.reply,
            triggered=self.triggered,
            strip_mention=self.strip_mention,
        )
        return _FileFeatures(files=files, uploads=uploads)

    def buffers(self, msg: TelegramIncomingMessage) -> bool:
        """Whether ``msg`` is a file of an album to collect (file transfer on)."""
        return msg.media_group_id is not None and self.features.uploads.buffers(msg)

    async def file_command(self, msg: TelegramIncomingMessage, args_text: str) -> None:
        """``/file …``."""
        await self._answering(
            msg, "file transfer", lambda: self.features.files.handle_command(msg, args_text)
        )

    async def voice_prompt(self, msg: TelegramIncomingMessage) -> str | None:
        """A voice note that passed the trigger check: its transcript prompt, or None."""
        return await self._answering(msg, "voice transcription", lambda: self.voice.prompt(msg))

    async def document_prompt(self, msg: TelegramIncomingMessage) -> str | None:
        """A document, photo or video that passed the trigger check: the prompt of a
        captioned upload in prompt mode, or None."""
        return await self._answering(
            msg, "file upload", lambda: self.features.uploads.handle_document(msg)
        )

    async def album_prompt(
        self, messages: list[TelegramIncomingMessage]
    ) -> tuple[TelegramIncomingMessage, str] | None:
        """A complete album: the captioned message and its prompt (prompt mode), or None."""
        if not messages:
            return None
        return await self._answering(
            messages[0], "file upload", lambda: self.features.uploads.handle_album(messages)
        )

    async def _answering(
        self, msg: TelegramIncomingMessage, what: str, work: Callable[[], Awaitable[T]]
    ) -> T | None:
        try:
            return await work()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.media.failed", what=what, error=str(exc))
            await self.reply(msg, f"error:\n{what} failed: {exc or type(exc).__name__}")
            return None


def build_media_handlers(
    cfg: TelegramBridgeConfig,
    *,
    reply: Reply,
    ambient_context: AmbientContext,
    triggered: Triggered,
    strip_mention: Callable[[str], str] = lambda text: text,
    transcriber: SpeechToText | None = None,
) -> MediaHandlers:
    """Wire the handlers to the chat loop's parts: ``reply`` answers a message in its thread
    (:meth:`.Replier.reply`); ``ambient_context(msg)`` is the context prompts use
    (:meth:`.PromptRunner.ambient_context`); ``triggered(msg, command)`` is the trigger-mode
    check of the message's scope; ``strip_mention`` drops a leading ``@bot``."""
    # Built now: it registers the transcription API key as a secret to redact from logs.
    voice = VoiceNotes(
        bot=cfg.bot,
        config=cfg.voice_transcription,
        runtime=cfg.runtime,
        reply=reply,
        transcriber=transcriber,
    )
    return MediaHandlers(
        cfg,
        reply=reply,
        ambient_context=ambient_context,
        triggered=triggered,
        strip_mention=strip_mention,
        voice=voice,
    )


__all__ = ["MediaHandlers", "build_media_handlers"]
