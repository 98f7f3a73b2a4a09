"""The file and voice features of the chat loop, built from its config in one place.

The loop routes to them in the reference order: a message of an album goes to
:meth:`MediaHandlers.buffer_album` (right after forwards); ``/file`` to
:meth:`~MediaHandlers.file_command` (with the other built-in commands); after the
trigger-mode check, voice notes to :meth:`~MediaHandlers.voice_note` and documents, photos
and videos to :meth:`~MediaHandlers.document`. An unexpected failure in any of them is
logged and answered (``error:`` and what failed), so a message never goes unanswered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.context import RunContext
from takopi.logging import get_logger

from .bridge import TelegramBridgeConfig
from .file_transfer import FileTransfer
from .media_groups import MediaGroupBuffer
from .types import TelegramIncomingMessage
from .uploads import Uploads
from .voice import SpeechToText, VoiceNotes

log = get_logger(__name__)
Reply = Callable[[TelegramIncomingMessage, str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MediaHandlers:
    """``/file``, auto-put uploads, the album buffer and voice notes."""

    files: FileTransfer
    uploads: Uploads
    albums: MediaGroupBuffer
    voice: VoiceNotes
    reply: Reply

    def buffer_album(self, msg: TelegramIncomingMessage) -> bool:
        """Take ``msg`` into the album buffer when it is part of one (file transfer on)."""
        if not self.uploads.buffers(msg):
            return False
        self.albums.add(msg)
        return True

    async def file_command(self, msg: TelegramIncomingMessage, args_text: str) -> None:
        """``/file …``."""
        await self._answering(msg, "file transfer", self.files.handle_command(msg, args_text))

    async def voice_note(self, msg: TelegramIncomingMessage) -> None:
        """A voice note that passed the trigger check."""
        await self._answering(msg, "voice transcription", self.voice.handle(msg))

    async def document(self, msg: TelegramIncomingMessage) -> None:
        """A document, photo or video that passed the trigger check."""
        await self._answering(msg, "file upload", self.uploads.handle_document(msg))

    async def album(self, messages: list[TelegramIncomingMessage]) -> None:
        """A complete album (the buffer's flush)."""
        if messages:
            await self._answering(messages[0], "file upload", self.uploads.handle_album(messages))

    async def _answering(
        self, msg: TelegramIncomingMessage, what: str, work: Awaitable[None]
    ) -> None:
        try:
            await work
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.media.failed", what=what, error=str(exc))
            await self.reply(msg, f"error:\n{what} failed: {exc or type(exc).__name__}")


def build_media_handlers(
    cfg: TelegramBridgeConfig,
    *,
    task_group: TaskGroup,
    reply: Reply,
    ambient_context: Callable[[int], Awaitable[RunContext | None]],
    triggered: Callable[[TelegramIncomingMessage, str | None], Awaitable[bool]],
    submit_prompt: Callable[[TelegramIncomingMessage], None],
    strip_mention: Callable[[str], str] = lambda text: text,
    transcriber: SpeechToText | None = None,
) -> MediaHandlers:
    """Wire the handlers to the loop's callables (``submit_prompt`` runs a message as a
    prompt; ``triggered`` is the trigger-mode check)."""
    files = FileTransfer(
        bot=cfg.bot,
        config=cfg.files,
        runtime=cfg.runtime,
        reply=reply,
        ambient_context=ambient_context,
    )
    uploads = Uploads(
        transfer=files,
        config=cfg.files,
        reply=reply,
        submit_prompt=submit_prompt,
        triggered=triggered,
        strip_mention=strip_mention,
    )
    albums = MediaGroupBuffer(
        delay_s=cfg.media_group_debounce_s,
        task_group=task_group,
        on_flush=lambda messages: handlers.album(messages),  # ``handlers`` is bound below
    )
    voice = VoiceNotes(
        bot=cfg.bot,
        config=cfg.voice_transcription,
        runtime=cfg.runtime,
        reply=reply,
        submit_prompt=submit_prompt,
        transcriber=transcriber,
    )
    handlers = MediaHandlers(files=files, uploads=uploads, albums=albums, voice=voice, reply=reply)
    return handlers


__all__ = ["MediaHandlers", "build_media_handlers"]
