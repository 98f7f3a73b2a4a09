"""Files: users post documents, photos, videos, voice notes and albums; ``getFile`` and the
download URL ``/file/bot<token>/<file_path>`` serve them (Telegram's 20 MiB ``getFile``
limit applies); the bot's ``sendDocument`` uploads (multipart, 50 MiB limit) are kept with
their bytes (``FakeMessage.document``)."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.multipart import FilePart

from .chats import ChatsMixin
from .records import (
    MAX_GET_FILE_BYTES,
    MAX_SEND_DOCUMENT_BYTES,
    BotApiError,
    FakeDocument,
    FakeFile,
    FakeMessage,
    _as_int,
)


class FilesMixin(ChatsMixin):
    """Posting files as a user, fetching them as the bot, and ``sendDocument``."""

    def add_file(
        self,
        content: bytes,
        *,
        folder: str = "documents",
        suffix: str = "",
        size: int | None = None,
        hide_size: bool = False,
    ) -> FakeFile:
        """Store a downloadable file. ``size`` declares another size than ``len(content)``
        (to play a huge file without storing it); ``hide_size`` declares none at all."""
        with self._cond:
            n = next(self._file_ids)
            stored = FakeFile(
                file_id=f"file{n}",
                file_unique_id=f"uniq{n}",
                file_path=f"{folder}/file_{n}{suffix}",
                content=content,
                declared_size=size,
                hide_size=hide_size,
            )
            self._files[stored.file_id] = stored
            return stored

    def send_user_document(
        self,
        chat_id: int,
        content: bytes,
        *,
        file_name: str | None = "file.txt",
        caption: str | None = None,
        media_group_id: str | None = None,
        kind: str = "document",
        mime_type: str | None = None,
        size: int | None = None,
        report_size: bool = True,
        user_id: int | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user posts a document (``kind="video"`` for a video) with an optional caption.

        ``size`` is the size Telegram declares (default: the real one); ``report_size=False``
        leaves ``file_size`` out of the message and of ``getFile``."""
        suffix = "." + file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else ""
        stored = self.add_file(
            content,
            folder="videos" if kind == "video" else "documents",
            suffix=suffix,
            size=size,
            hide_size=not report_size,
        )
        media: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
        }
        if file_name is not None:
            media["file_name"] = file_name
        if mime_type is not None:
            media["mime_type"] = mime_type
        if report_size:
            media["file_size"] = stored.size
        extra: dict[str, Any] = {kind: media}
        if media_group_id is not None:
            extra["media_group_id"] = media_group_id
        return self.send_user_message(
            chat_id,
            caption=caption,
            user_id=user_id,
            reply_to=reply_to,
            thread_id=thread_id,
            extra=extra,
        )

    def send_user_photo(
        self,
        chat_id: int,
        content: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        user_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user posts a photo: Telegram sends several sizes; ``content`` is the largest."""
        thumb = self.add_file(content[:16], folder="photos", suffix=".jpg")
        full = self.add_file(content, folder="photos", suffix=".jpg")
        sizes = [
            {
                "file_id": thumb.file_id,
                "file_unique_id": thumb.file_unique_id,
                "width": 90,
                "height": 60,
                "file_size": thumb.size,
            },
            {
                "file_id": full.file_id,
                "file_unique_id": full.file_unique_id,
                "width": 1280,
                "height": 853,
                "file_size": full.size,
            },
        ]
        extra: dict[str, Any] = {"photo": sizes}
        if media_group_id is not None:
            extra["media_group_id"] = media_group_id
        return self.send_user_message(
            chat_id, caption=caption, user_id=user_id, thread_id=thread_id, extra=extra
        )

    def send_user_voice(
        self,
        chat_id: int,
        content: bytes,
        *,
        caption: str | None = None,
        size: int | None = None,
        report_size: bool = True,
        user_id: int | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user records a voice note (OGG/Opus in real life; any bytes here)."""
        stored = self.add_file(
            content, folder="voice", suffix=".oga", size=size, hide_size=not report_size
        )
        voice: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": 2,
            "mime_type": "audio/ogg",
        }
        if report_size:
            voice["file_size"] = stored.size
        return self.send_user_message(
            chat_id,
            caption=caption,
            user_id=user_id,
            reply_to=reply_to,
            thread_id=thread_id,
            extra={"voice": voice},
        )

    def sent_documents(self, chat_id: int) -> list[FakeMessage]:
        """The bot's ``sendDocument`` messages in a chat, oldest first."""
        return [m for m in self.bot_messages(chat_id) if m.document is not None]

    def _api_getFile(self, params: dict[str, Any]) -> Any:
        with self._cond:
            stored = self._files.get(str(params.get("file_id") or ""))
            if stored is None:
                raise BotApiError(400, "Bad Request: invalid file_id")
            if stored.size > MAX_GET_FILE_BYTES:
                raise BotApiError(400, "Bad Request: file is too big")
            info: dict[str, Any] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_path": stored.file_path,
            }
            if not stored.hide_size:
                info["file_size"] = stored.size
            return info

    def download(self, file_path: str) -> bytes | None:
        """The content behind a ``getFile`` path (None if unknown)."""
        with self._cond:
            self.downloads.append(file_path)
            for stored in self._files.values():
                if stored.file_path == file_path:
                    return stored.content
            return None

    def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        with self._cond:
            chat_id = self._require_chat(params)
            document = params.get("document")
            if not isinstance(document, FilePart):
                raise BotApiError(400, "Bad Request: there is no document in the request")
            if len(document.content) > MAX_SEND_DOCUMENT_BYTES:
                raise BotApiError(413, "Request Entity Too Large")
            if document.content == b"":
                raise BotApiError(400, "Bad Request: file must be non-empty")
            reply_to = _as_int(params.get("reply_to_message_id"))
            if (
                reply_to is not None
                and self._find(chat_id, reply_to) is None
                and str(params.get("allow_sending_without_reply")).lower() != "true"
            ):
                raise BotApiError(400, "Bad Request: message to be replied not found")
            caption = params.get("caption")
            msg = FakeMessage(
                chat_id=chat_id,
                message_id=next(self._next_message_id[chat_id]),
                text=caption if isinstance(caption, str) else "",
                from_bot=True,
                sender_id=self.bot_id,
                date=int(time.time()),
                reply_to_message_id=reply_to,
                thread_id=_as_int(params.get("message_thread_id")),
                disable_notification=str(params.get("disable_notification")).lower() == "true",
                document=FakeDocument(
                    filename=document.filename,
                    content=document.content,
                    caption=caption if isinstance(caption, str) else None,
                ),
            )
            self._messages[chat_id].append(msg)
            self._cond.notify_all()
            raw = self._as_raw(msg)
            raw.pop("text", None)
            raw["document"] = {
                "file_id": f"sent{chat_id}_{msg.message_id}",
                "file_unique_id": f"sentu{chat_id}_{msg.message_id}",
                "file_name": document.filename,
                "file_size": len(document.content),
            }
            if isinstance(caption, str):
                raw["caption"] = caption
            return raw


__all__ = ["FilesMixin"]
