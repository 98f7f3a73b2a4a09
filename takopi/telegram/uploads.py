"""Files sent without ``/file put`` (auto-put), alone or as an album.

With ``files.enabled``:

- no caption and ``auto_put`` ⇒ saved to ``uploads_dir`` (as ``/file put`` would);
- a caption and ``auto_put_mode = "prompt"`` ⇒ saved, then the caption runs as a prompt
  with ``[uploaded file: <path>]`` (albums: ``[uploaded files]`` and a ``- <path>`` list)
  after a blank line; directives in the caption choose where the files go and the run;
- a caption in ``upload`` mode, or ``auto_put = false`` ⇒ the ``/file put`` usage.

An album whose caption is ``/file put <dir/>`` puts every file there. Without
``files.enabled`` documents, photos and videos are ignored silently. A caption to run comes
back as the prompt text; the chat loop runs it through its usual prompt path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from takopi.logging import get_logger

from .attachments import IncomingFile, incoming_file
from .bridge import TelegramFilesConfig
from .commands import parse_command
from .file_transfer import (
    MARKDOWN_LINE_BREAK,
    PUT_USAGE,
    FileTransfer,
    SavedFile,
    TransferError,
    UploadOutcome,
)
from .files import parse_file_command
from .media_groups import album_lead
from .types import Reply, TelegramIncomingMessage

log = get_logger(__name__)

Triggered = Callable[[TelegramIncomingMessage, str | None], Awaitable[bool]]


def annotate_upload(caption: str, saved: SavedFile) -> str:
    """The prompt of a captioned upload: ``<caption>\\n\\n[uploaded file: <path>]``."""
    return f"{caption}\n\n[uploaded file: {saved.rel}]"


def annotate_uploads(caption: str, saved: Sequence[SavedFile]) -> str:
    """The prompt of a captioned album: the caption, then ``[uploaded files]`` and a list."""
    listing = "\n".join(f"- {s.rel}" for s in saved)
    return f"{caption}\n\n[uploaded files]\n{listing}"


class Uploads:
    """Auto-put of single documents and albums (see module docstring).

    ``triggered(msg, command)`` is the loop's trigger-mode check; ``strip_mention`` removes a
    leading ``@bot`` from a caption before its directives are read."""

    def __init__(
        self,
        *,
        transfer: FileTransfer,
        config: TelegramFilesConfig,
        reply: Reply,
        triggered: Triggered,
        strip_mention: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.transfer = transfer
        self.config = config
        self.reply = reply
        self.triggered = triggered
        self.strip_mention = strip_mention

    def buffers(self, msg: TelegramIncomingMessage) -> bool:
        """Whether ``msg`` belongs in the album buffer (file transfer on, part of an album)."""
        return self.config.enabled and msg.media_group_id is not None and msg.has_document

    @property
    def _prompt_mode(self) -> bool:
        return self.config.auto_put and self.config.auto_put_mode == "prompt"

    async def handle_document(self, msg: TelegramIncomingMessage) -> str | None:
        """A document, photo or video that is not a ``/file`` command: answered, or (a
        caption in prompt mode) the prompt to run."""
        attached = incoming_file(msg.raw)
        if not self.config.enabled or attached is None:
            log.debug("telegram.upload.ignored", reason="files_disabled", chat_id=msg.chat_id)
            return None
        caption = msg.text.strip()
        if not self.config.auto_put or (caption and not self._prompt_mode):
            await self.reply(msg, PUT_USAGE)
            return None
        if not await self.transfer.permitted(msg):
            return None
        try:
            workspace = await self.transfer.workspace(msg, self.strip_mention(caption), upload=True)
            saved = await self.transfer.save(attached, workspace, None, force=False)
        except TransferError as exc:
            await self.reply(msg, str(exc))
            return None
        if caption:
            return annotate_upload(msg.text, saved)
        await self.reply(msg, self.transfer.saved_text(saved, workspace))
        return None

    async def handle_album(
        self, messages: list[TelegramIncomingMessage]
    ) -> tuple[TelegramIncomingMessage, str] | None:
        """A whole album (from :class:`~takopi.telegram.media_groups.MediaGroupBuffer`):
        answered, or (a caption in prompt mode) the message whose caption runs and the
        prompt to run."""
        files = [f for f in (incoming_file(m.raw) for m in messages) if f is not None]
        if not files:
            return None
        lead = album_lead(messages)
        if not await self._album_triggered(messages):
            log.debug("update.ignored", reason="not_triggered", chat_id=lead.chat_id)
            return None
        caption = lead.text.strip()
        command = parse_command(caption)
        if command is not None and command.name == "file":
            await self._album_command(lead, files, command.args_text)
            return None
        if not self.config.auto_put or (caption and not self._prompt_mode):
            await self.reply(lead, PUT_USAGE)
            return None
        if not await self.transfer.permitted(lead):
            return None
        try:
            workspace = await self.transfer.workspace(
                lead, self.strip_mention(caption), upload=True
            )
        except TransferError as exc:
            await self.reply(lead, str(exc))
            return None
        outcome = await self.transfer.save_many(files, workspace, None, force=False)
        if not caption or not outcome.saved:
            await self.reply(lead, self.transfer.outcome_text(outcome, workspace))
            return None
        if outcome.failed:
            await self.reply(lead, self._failures(outcome))
        return lead, annotate_uploads(lead.text, outcome.saved)

    @staticmethod
    def _failures(outcome: UploadOutcome) -> str:
        return MARKDOWN_LINE_BREAK.join(
            f"failed: `{name}` ({error})" for name, error in outcome.failed
        )

    async def _album_command(
        self, lead: TelegramIncomingMessage, files: list[IncomingFile], args_text: str
    ) -> None:
        subcommand, rest, _error = parse_file_command(args_text)
        if subcommand != "put":
            await self.transfer.handle_command(lead, args_text)
            return
        if not await self.transfer.permitted(lead):
            return
        await self.transfer.put_files(lead, files, rest)

    async def _album_triggered(self, messages: list[TelegramIncomingMessage]) -> bool:
        """Any message of the album triggers (a ``/file`` caption always does)."""
        for msg in messages:
            command = parse_command(msg.text)
            if command is not None and command.name == "file":
                return True
            if await self.triggered(msg, command.name if command is not None else None):
                return True
        return False


__all__ = ["Uploads", "annotate_upload", "annotate_uploads"]
